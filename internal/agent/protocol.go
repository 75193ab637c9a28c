// Package agent is the cluster agent on port 25000: the join endpoint a
// join token opens, and the endpoints a joined node reaches with its
// client certificate. It runs on control-plane nodes only.
package agent

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"

	"k8s.io/client-go/util/cert"

	"github.com/kubeseed/kubeseed/internal/jointoken"
	"github.com/kubeseed/kubeseed/internal/pki"
)

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

// NewWorkerCSRs makes a fresh key for each of WorkerCSRs and a CSR for it,
// at join and at every renewal: the keys never leave the worker. The agent
// sets the subjects, so the CSRs carry only the node's name.
func NewWorkerCSRs(nodeName string) (map[string]crypto.Signer, map[string][]byte, error) {
	keys, csrs := map[string]crypto.Signer{}, map[string][]byte{}
	for _, name := range WorkerCSRs {
		key, err := pki.NewKey()
		if err != nil {
			return nil, nil, err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeName}}, key)
		if err != nil {
			return nil, nil, fmt.Errorf("CSR %s: %w", name, err)
		}
		keys[name], csrs[name] = key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	return keys, csrs, nil
}

// ParseCerts parses the certificates an answer carries for WorkerCSRs.
func ParseCerts(in map[string][]byte) (map[string]*x509.Certificate, error) {
	out := map[string]*x509.Certificate{}
	for _, name := range WorkerCSRs {
		certs, err := cert.ParseCertsPEM(in[name])
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", name, err)
		}
		out[name] = certs[0]
	}
	return out, nil
}

// JoinRequest is what a joining node posts to JoinPath.
type JoinRequest struct {
	Token    string         `json:"token"` // id.secret
	Role     jointoken.Role `json:"role"`
	NodeName string         `json:"nodeName"`
	// Version is the joiner's Kubernetes version; it must equal the
	// agent's, as every node runs the same kubeseed binary.
	Version string            `json:"version"`
	CSRs    map[string][]byte `json:"csrs"` // name → PEM CERTIFICATE REQUEST (workers)
	// EtcdPeerPort is a joining control plane's etcd-ha port, where the
	// other members will reach its etcd member.
	EtcdPeerPort int `json:"etcdPeerPort,omitempty"`
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
	// ControlPlane is what only a joining control plane receives.
	ControlPlane *ControlPlaneJoin `json:"controlPlane,omitempty"`
}

// ControlPlaneJoin is what a control plane needs to serve: the signing
// keys every control plane shares, and its place in etcd. It issues its
// own leaves (serving, etcd peer, kubelet) with them.
type ControlPlaneJoin struct {
	// Keys holds PEM files by pki.Table name: "<name>.crt" and
	// "<name>.key" of each of SharedKeys.
	Keys map[string][]byte `json:"keys"`
	// EtcdMemberID is the learner the agent added for the joiner (hex).
	EtcdMemberID string `json:"etcdMemberID"`
	// EtcdInitialCluster is etcd's --initial-cluster for the joiner.
	EtcdInitialCluster string `json:"etcdInitialCluster"`
	// AuthorizationMode is the cluster's (AlwaysAllow or RBAC).
	AuthorizationMode string `json:"authorizationMode"`
}

// SharedKeys are the pki.Table entries every control plane holds the same
// copy of: a joining control plane receives them, a worker never does.
var SharedKeys = []string{"ca", "front-proxy-ca", "etcd-ca", "serviceaccount"}

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
	KindBusy      = "busy" // another control plane is joining: retry shortly
	KindInternal  = "internal"
)

// ErrorResponse is the body of every refusal.
type ErrorResponse struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}
