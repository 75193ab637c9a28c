// Package agent is the cluster agent on port 25000: the join endpoint a
// join token opens, and the endpoints a joined node reaches with its
// client certificate. It runs on control-plane nodes only.
package agent

import "github.com/kubeseed/kubeseed/internal/jointoken"

// Paths served.
const (
	HealthPath   = "/health"
	JoinPath     = "/cluster/api/v2.0/join"
	CompletePath = "/cluster/api/v2.0/join/complete"
	RenewPath    = "/cluster/api/v2.0/certificates/renew"
)

// CSR names: the certificates a worker asks for, by pki.Table name. The
// agent sets every subject; a CSR contributes only its public key.
const (
	KubeletClientCSR  = "kubelet"
	KubeletServingCSR = "kubelet-serving"
	ProxyCSR          = "proxy"
)

// WorkerCSRs are the CSRs a worker sends, in order.
var WorkerCSRs = []string{KubeletClientCSR, KubeletServingCSR, ProxyCSR}

// JoinRequest is what a joining node posts to JoinPath.
type JoinRequest struct {
	Token    string         `json:"token"` // id.secret
	Role     jointoken.Role `json:"role"`
	NodeName string         `json:"nodeName"`
	// Version is the joiner's Kubernetes version; it must equal the
	// agent's, as every node runs the same kubeseed binary.
	Version string            `json:"version"`
	CSRs    map[string][]byte `json:"csrs"` // name → PEM CERTIFICATE REQUEST
}

// Cluster is what a joining node needs to know of the cluster.
type Cluster struct {
	ClusterCIDR   string `json:"clusterCIDR"`
	ServiceCIDR   string `json:"serviceCIDR"`
	ClusterDNS    string `json:"clusterDNS"`
	ClusterDomain string `json:"clusterDomain"`
}

// JoinResponse answers a valid JoinRequest.
type JoinResponse struct {
	TokenID string `json:"tokenID"`
	Attempt string `json:"attempt"` // names the reservation CompletePath consumes
	// NodeIP is the joiner's address as the agent saw it: the node's
	// InternalIP, and the kubelet serving certificate's SAN.
	NodeIP     string            `json:"nodeIP"`
	CA         []byte            `json:"ca"`    // PEM of the cluster CA certificate
	Certs      map[string][]byte `json:"certs"` // name → PEM certificate, for the CSRs sent
	APIServers []string          `json:"apiServers"`
	Cluster    Cluster           `json:"cluster"`
}

// CompleteRequest is posted to CompletePath, with the new node's client
// certificate, once it is Ready.
type CompleteRequest struct {
	TokenID string `json:"tokenID"`
	Attempt string `json:"attempt"`
}

// RenewRequest is posted to RenewPath with the node's current kubelet
// client certificate: a CSR for each of WorkerCSRs, for keys made afresh
// on the worker. As at join, the agent sets every subject and SAN.
type RenewRequest struct {
	CSRs map[string][]byte `json:"csrs"` // name → PEM CERTIFICATE REQUEST
}

// RenewResponse answers a valid RenewRequest.
type RenewResponse struct {
	Certs map[string][]byte `json:"certs"` // name → PEM certificate
}

// Error kinds, so a joiner can tell a token problem from a refusal of the
// join itself and say what to do.
const (
	KindToken     = "token"     // unknown, expired, used up or wrong role: get a new one
	KindPreflight = "preflight" // the cluster refuses this node as it is
	KindRequest   = "request"   // a malformed request
	KindLimited   = "rate-limited"
	KindInternal  = "internal"
)

// ErrorResponse is the body of every refusal.
type ErrorResponse struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}
