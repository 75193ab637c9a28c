package pki

import (
	"crypto/x509"
	"time"
)

// Year is the lifetime unit of the table.
const Year = 365 * 24 * time.Hour

// SANKind selects where a certificate's subjectAltNames come from.
type SANKind int

const (
	// NoSANs: client certificates and CAs.
	NoSANs SANKind = iota
	// TemplateSANs: certs/csr.conf.template's [alt_names], plus the host's
	// IPs where the template has its #MOREIPS line.
	TemplateSANs
	// HostSANs: localhost, 127.0.0.1, the node name and the host's IPs.
	HostSANs
	// LoopbackSANs: localhost and 127.0.0.1, for loopback-only services.
	LoopbackSANs
)

var (
	serverAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	bothAuth   = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
)

// Spec declares one certificate (or bare key) under certs/.
type Spec struct {
	Name         string // files certs/<Name>.crt and certs/<Name>.key
	CA           string // Name of the signing CA; "" for a self-signed CA
	KeyOnly      bool   // a bare signing key, no certificate
	CommonName   string // NodeNameToken is replaced with the node name
	Organization []string
	Usages       []x509.ExtKeyUsage
	Lifetime     time.Duration
	SANs         SANKind
	// ExtraDNS are DNS SANs added to SANs': a unix socket's TLS server
	// name, which etcd's client takes from the socket's file name.
	ExtraDNS []string
	// Kubeconfig, when set, is the credentials/ file that authenticates
	// with this client certificate.
	Kubeconfig string
	// EmbedInKubeconfig puts the CA, certificate and key inline in the
	// kubeconfig, for a file users copy elsewhere. Otherwise the kubeconfig
	// references the files under certs/, which client-go re-reads, so a
	// renewal reaches the running components without a restart.
	EmbedInKubeconfig bool
	Purpose           string
}

// AuthWebhookClientCN is the only client the auth webhook answers.
const AuthWebhookClientCN = "kube-apiserver-auth-webhook-client"

// EtcdSocketName is the file name of etcd's client socket, and so the
// server name its clients check.
const EtcdSocketName = "etcd.sock"

// NodeNameToken in a CommonName stands for the node's name.
const NodeNameToken = "{node}"

// IsCA reports whether the spec is a self-signed certificate authority.
func (s Spec) IsCA() bool { return s.CA == "" && !s.KeyOnly }

// Table is every certificate and key kubeseed issues, CAs first.
//
// etcd has its own CA, unlike MicroK8s: a client certificate from the
// cluster CA (every user added with add-user has one) must not open the
// datastore.
var Table = []Spec{
	{Name: "ca", CommonName: "kubeseed-ca", Lifetime: 10 * Year,
		Purpose: "cluster CA: signs serving and client certificates"},
	{Name: "front-proxy-ca", CommonName: "kubeseed-front-proxy-ca", Lifetime: 10 * Year,
		Purpose: "CA for the aggregation layer's front proxy"},
	{Name: "etcd-ca", CommonName: "kubeseed-etcd-ca", Lifetime: 10 * Year,
		Purpose: "CA trusted by etcd only"},
	{Name: "serviceaccount", KeyOnly: true,
		Purpose: "service-account token signing key"},

	{Name: "server", CA: "ca", CommonName: "kube-apiserver", Usages: serverAuth, Lifetime: Year, SANs: TemplateSANs,
		Purpose: "kube-apiserver serving certificate"},
	{Name: "apiserver-kubelet-client", CA: "ca", CommonName: "kube-apiserver-kubelet-client", Usages: clientAuth, Lifetime: Year,
		Purpose: "kube-apiserver's identity towards kubelets"},
	{Name: "auth-webhook", CA: "ca", CommonName: "kubeseed-auth-webhook", Usages: serverAuth, Lifetime: Year, SANs: LoopbackSANs,
		Purpose: "auth webhook serving certificate (loopback only)"},
	{Name: "apiserver-auth-webhook-client", CA: "ca", CommonName: AuthWebhookClientCN, Usages: clientAuth, Lifetime: Year,
		Purpose: "kube-apiserver's identity towards the auth webhook"},
	{Name: "front-proxy-client", CA: "front-proxy-ca", CommonName: "front-proxy-client", Usages: clientAuth, Lifetime: Year,
		Purpose: "kube-apiserver's identity towards aggregated API servers"},
	{Name: "etcd-server", CA: "etcd-ca", CommonName: "etcd-server", Usages: bothAuth, Lifetime: Year, SANs: HostSANs,
		ExtraDNS: []string{EtcdSocketName}, Purpose: "etcd client serving certificate (port and unix socket)"},
	// Each control plane issues its own with its local copy of the etcd
	// CA; no peer key is shared by every node, unlike MicroK8s's.
	{Name: "etcd-peer", CA: "etcd-ca", CommonName: "etcd-peer", Usages: bothAuth, Lifetime: Year, SANs: HostSANs,
		Purpose: "etcd peer certificate of this node (mutual TLS, ports 2380 and 19001)"},
	{Name: "apiserver-etcd-client", CA: "etcd-ca", CommonName: "kube-apiserver-etcd-client", Usages: clientAuth, Lifetime: Year,
		Purpose: "kube-apiserver's identity towards etcd"},
	{Name: "kube-controller-manager", CA: "ca", CommonName: "kube-controller-manager", Usages: serverAuth, Lifetime: Year, SANs: HostSANs,
		Purpose: "kube-controller-manager serving certificate"},
	{Name: "kube-scheduler", CA: "ca", CommonName: "kube-scheduler", Usages: serverAuth, Lifetime: Year, SANs: HostSANs,
		Purpose: "kube-scheduler serving certificate"},
	{Name: "cluster-agent", CA: "ca", CommonName: "kubeseed-cluster-agent", Usages: serverAuth, Lifetime: Year, SANs: HostSANs,
		Purpose: "cluster agent serving certificate (join, node certificates)"},
	{Name: "kubelet-serving", CA: "ca", CommonName: "system:node:" + NodeNameToken, Usages: serverAuth, Lifetime: Year, SANs: HostSANs,
		Purpose: "kubelet serving certificate (port 10250)"},

	{Name: "admin", CA: "ca", CommonName: "admin", Organization: []string{"system:masters"}, Usages: clientAuth, Lifetime: Year,
		Kubeconfig: "client.config", EmbedInKubeconfig: true, Purpose: "cluster admin (kubeseed kubectl)"},
	{Name: "controller", CA: "ca", CommonName: "system:kube-controller-manager", Usages: clientAuth, Lifetime: Year,
		Kubeconfig: "controller.config", Purpose: "kube-controller-manager's identity"},
	{Name: "scheduler", CA: "ca", CommonName: "system:kube-scheduler", Usages: clientAuth, Lifetime: Year,
		Kubeconfig: "scheduler.config", Purpose: "kube-scheduler's identity"},
	{Name: "kubelet", CA: "ca", CommonName: "system:node:" + NodeNameToken, Organization: []string{"system:nodes"}, Usages: clientAuth, Lifetime: Year,
		Kubeconfig: "kubelet.config", Purpose: "the kubelet's identity"},
	{Name: "proxy", CA: "ca", CommonName: "system:kube-proxy", Usages: clientAuth, Lifetime: Year,
		Kubeconfig: "proxy.config", Purpose: "kube-proxy's identity"},
}

// Signed returns the specs signed by the named CA, in table order.
func Signed(ca string) []Spec {
	var out []Spec
	for _, s := range Table {
		if s.CA == ca {
			out = append(out, s)
		}
	}
	return out
}

// Lookup returns the named spec.
func Lookup(name string) (Spec, bool) {
	for _, s := range Table {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// UserSpec is a client certificate for a user added at run time (kubeseed
// add-user). It is not part of Table: users come and go, and their
// certificates are handed out in kubeconfigs rather than kept under certs/.
func UserSpec(name string, groups []string, lifetime time.Duration) Spec {
	return Spec{Name: "user-" + name, CA: "ca", CommonName: name, Organization: groups,
		Usages: clientAuth, Lifetime: lifetime, Purpose: "user " + name}
}
