package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// renew signs fresh certificates for a worker that shows its current
// kubelet client certificate. A certificate that is expired or not from
// the cluster CA fails the TLS handshake, before this runs. The subjects
// and SANs are the ones the node joined with, whatever the CSRs ask for,
// and a node whose Node object is gone (removed from the cluster) is
// refused: its certificates then die with their short lifetime.
func (s *Server) renew(w http.ResponseWriter, r *http.Request) {
	src := sourceIP(r)
	log := klog.FromContext(r.Context()).WithValues("source", src)
	if ok, wait := s.renewals.Allowed(src); !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		refuse(w, http.StatusTooManyRequests, KindLimited, "too many failed certificate renewals from %s; try again in %s", src, wait.Round(time.Second))
		return
	}
	fail := func(status int, kind, format string, a ...any) {
		s.renewals.Fail(src)
		log.Info("Refused a certificate renewal", "reason", fmt.Sprintf(format, a...))
		refuse(w, status, kind, format, a...)
	}
	node, ok := nodeOf(r)
	if !ok {
		fail(http.StatusUnauthorized, KindRequest, "renewing certificates needs the node's current kubelet client certificate (system:node:<name> in system:nodes) from the cluster CA")
		return
	}
	log = log.WithValues("node", node)
	var req RenewRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes)).Decode(&req); err != nil {
		fail(http.StatusBadRequest, KindRequest, "malformed renewal request: %v", err)
		return
	}
	csrs, err := parseCSRs(req.CSRs)
	if err != nil {
		fail(http.StatusBadRequest, KindRequest, "%v", err)
		return
	}
	if s.cfg.Removed != nil {
		removed, err := s.cfg.Removed.Has(r.Context(), node)
		if err != nil {
			refuse(w, http.StatusServiceUnavailable, KindInternal, "%v", err)
			return
		}
		if removed {
			fail(http.StatusForbidden, KindPreflight, "node %q was removed from the cluster (kubeseed remove-node), so its certificates are not renewed; run `kubeseed leave` on it and join it again", node)
			return
		}
	}
	n, err := s.cfg.Kube.CoreV1().Nodes().Get(r.Context(), node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		fail(http.StatusForbidden, KindPreflight, "node %q is not in this cluster (it has no Node object: it was removed), so its certificates are not renewed; `kubeseed reset` that machine and join it again with a line from `kubeseed add-node --worker`", node)
		return
	case err != nil:
		log.Error(err, "Could not read the Node of a renewal")
		refuse(w, http.StatusServiceUnavailable, KindInternal, "read node %q: %v", node, err)
		return
	}
	// The serving certificate is for the address the node joined from,
	// which its kubelet reports as its InternalIP; a node now seen from
	// elsewhere would get a certificate the apiserver cannot use.
	if ips := internalIPs(n); len(ips) > 0 && !slices.Contains(ips, src) {
		fail(http.StatusForbidden, KindPreflight, "node %q reaches the cluster agent from %s, but its InternalIP is %s: its kubelet serving certificate must name the address the node joined with; make that address reach the agent", node, src, strings.Join(ips, ", "))
		return
	}
	certs, err := s.signWorker(node, src, csrs)
	if err != nil {
		log.Error(err, "Could not sign a renewal")
		refuse(w, http.StatusInternalServerError, KindInternal, "%v", err)
		return
	}
	log.Info("Renewed a worker's certificates", "lifetime", s.cfg.WorkerCertLifetime)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(RenewResponse{Certs: certs})
}

func internalIPs(n *corev1.Node) []string {
	var out []string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			out = append(out, a.Address)
		}
	}
	return out
}
