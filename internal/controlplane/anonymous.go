package controlplane

import (
	"net/http"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
)

// rejectAnonymous wraps a delegated authenticator so that a request with no
// credentials is refused (401) instead of becoming system:anonymous.
// Upstream's delegated authentication always adds the anonymous
// authenticator, and under the apiserver's AlwaysAllow mode that would open
// the controller-manager's and scheduler's endpoints to anyone.
type rejectAnonymous struct {
	authenticator.Request
}

func (r rejectAnonymous) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	resp, ok, err := r.Request.AuthenticateRequest(req)
	if ok && resp != nil && resp.User != nil && resp.User.GetName() == user.Anonymous {
		return nil, false, nil
	}
	return resp, ok, err
}
