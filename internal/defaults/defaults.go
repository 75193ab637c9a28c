// Package defaults renders the args and config files of a new node from the
// services table. After the first start the files on disk are the source of
// truth; these defaults are never applied over them.
package defaults

import (
	"net"
	"strconv"
	"strings"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/services"
)

// Component args file names.
const (
	APIServerComponent         = "kube-apiserver"
	ControllerManagerComponent = "kube-controller-manager"
	SchedulerComponent         = "kube-scheduler"
	AuthWebhookComponent       = "auth-webhook"
)

// Network defaults, as MicroK8s uses them.
const (
	ServiceCIDR = "10.152.183.0/24"
	ServiceIP   = "10.152.183.1" // the kubernetes Service, first IP of ServiceCIDR
	ClusterCIDR = "10.1.0.0/16"
	// NodeCIDRMaskSize is each node's pod range within ClusterCIDR.
	NodeCIDRMaskSize = "24"
)

// TLS settings of every TLS listener: TLS 1.2 or later, and for TLS 1.2
// only AEAD suites with forward secrecy (Go's TLS 1.3 suites are all AEAD).
// The serving keys are ECDSA; the RSA suites serve a user's own RSA CA.
const (
	TLSMinVersion     = "VersionTLS12"
	EtcdTLSMinVersion = "TLS1.2" // etcd names versions its own way
)

// TLSCipherSuites are the suites' IANA names, as upstream's flags take them.
var TLSCipherSuites = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

// TLSFlags are the flags that pin TLS, by component args file; older data
// dirs get the ones they lack at start (see package bootstrap).
func TLSFlags(component string) [][2]string {
	suites := strings.Join(TLSCipherSuites, ",")
	switch component {
	case APIServerComponent, ControllerManagerComponent, SchedulerComponent:
		return [][2]string{{"tls-min-version", TLSMinVersion}, {"tls-cipher-suites", suites}}
	case EtcdComponent:
		return [][2]string{{"tls-min-version", EtcdTLSMinVersion}, {"cipher-suites", suites}}
	}
	return nil
}

// ClusterFlags are the flags a node needs from its first start to join a
// cluster later, since components cannot be re-flagged in a running
// process: a pod range per node, and leader election, so only one
// controller manager and one scheduler act at a time. Older data dirs get
// them at start (see package bootstrap).
func ClusterFlags(component string) [][2]string {
	switch component {
	case ControllerManagerComponent:
		return [][2]string{{"allocate-node-cidrs", "true"}, {"node-cidr-mask-size", NodeCIDRMaskSize}, {"leader-elect", "true"}}
	case SchedulerComponent:
		return [][2]string{{"leader-elect", "true"}}
	}
	return nil
}

// EtcdComponent is the name of etcd's args file.
const EtcdComponent = "etcd"

// Args renders every component's default args file.
func Args(l datadir.Layout, nodeName string, portOffset int) []*args.File {
	return []*args.File{
		EtcdArgs(l, nodeName, portOffset),
		AuthWebhookArgs(l, portOffset),
		APIServerArgs(l, portOffset),
		ControllerManagerArgs(l, portOffset),
		SchedulerArgs(l, portOffset),
		ClusterAgentArgs(l, portOffset),
		ContainerdArgs(l, portOffset),
		KubeletArgs(l, nodeName),
		KubeProxyArgs(l, nodeName, portOffset),
		OverlayArgs(l, ClusterCIDR),
	}
}

// ConfigFiles are the default config files beside the args files, by path;
// podMTU is what the overlay carries.
func ConfigFiles(l datadir.Layout, portOffset, podMTU int) map[string][]byte {
	return map[string][]byte{
		l.Config(AuthenticationConfigFile): []byte(authenticationConfig),
		l.Args(KubeletConfigFile):          KubeletConfig(l, portOffset),
		l.Args(ContainerdConfigTemplate):   ContainerdConfig(),
		l.Args(CNITemplateFile):            CNITemplate(l, podMTU),
		l.Config(authz.ConfigFile):         authz.Render(authz.AlwaysAllow, false, Webhooks(l)),
	}
}

// Kubeconfigs of kube-apiserver for kubeseed's auth webhook, under
// config/: token authentication, and the deny authorizer. kubeseed derives
// them from args/auth-webhook at every start.
const (
	TokenWebhookKubeconfig = "token-webhook.kubeconfig"
	DenyWebhookKubeconfig  = "authorization-webhook.kubeconfig"
	// RemovedNodesWebhookKubeconfig is the removed-nodes authorizer's.
	RemovedNodesWebhookKubeconfig = "removed-nodes-webhook.kubeconfig"
)

// Webhooks are kube-apiserver's kubeconfigs for the authorization webhooks.
func Webhooks(l datadir.Layout) authz.Webhooks {
	return authz.Webhooks{Deny: l.Config(DenyWebhookKubeconfig), RemovedNodes: l.Config(RemovedNodesWebhookKubeconfig)}
}

// TokenWebhookCacheTTL bounds how long kube-apiserver trusts an answer of
// the token webhook, so a removed token stops working within this time plus
// the webhook's reload interval. It equals the apiserver's own token cache
// TTL (10s), which it would otherwise warn about.
const TokenWebhookCacheTTL = "10s"

// AuthenticationConfigFile is the structured authentication config under config/.
const AuthenticationConfigFile = "authentication.yaml"

// authenticationConfig lets anonymous requests reach the health endpoints
// only; everything else without credentials gets 401, even under AlwaysAllow.
const authenticationConfig = `# Structured authentication config for kube-apiserver (--authentication-config).
# Anonymous requests are allowed on the health endpoints only.
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions:
  - path: /healthz
  - path: /livez
  - path: /readyz
`

func port(name string, offset int) string {
	return strconv.Itoa(services.MustLookup(name).Port + offset)
}

func bind(name string) string {
	return services.MustLookup(name).Bind.Address()
}

func newArgs(l datadir.Layout, component, comment string, kvs [][2]string) *args.File {
	f := args.New(l.Args(component))
	f.AddComment(comment)
	f.AddComment("${DATA_DIR} is the data directory. Edit, then restart kubeseed.")
	for _, kv := range kvs {
		f.Set(kv[0], kv[1])
	}
	return f
}

// APIServerArgs renders args/kube-apiserver for a new node.
func APIServerArgs(l datadir.Layout, portOffset int) *args.File {
	const certs = "${DATA_DIR}/certs/"
	return newArgs(l, APIServerComponent, "Flags for kube-apiserver (upstream flag names).", append([][2]string{
		{"secure-port", port("kube-apiserver", portOffset)},
		{"bind-address", bind("kube-apiserver")},
		{"tls-cert-file", certs + "server.crt"},
		{"tls-private-key-file", certs + "server.key"},
		{"client-ca-file", certs + "ca.crt"},
		{"authentication-config", "${DATA_DIR}/config/" + AuthenticationConfigFile},
		// Static tokens go through kubeseed's webhook, which reloads
		// known_tokens.csv; --token-auth-file is read once, at start.
		{"authentication-token-webhook-config-file", "${DATA_DIR}/config/" + TokenWebhookKubeconfig},
		{"authentication-token-webhook-version", "v1"},
		{"authentication-token-webhook-cache-ttl", TokenWebhookCacheTTL},
		// AlwaysAllow or Node,RBAC; reloaded on change (kubeseed enable rbac).
		{"authorization-config", "${DATA_DIR}/config/" + authz.ConfigFile},
		// Admission plugins cannot be added at run time, so NodeRestriction
		// is on from the first start, whatever the authorization mode.
		{"enable-admission-plugins", "NodeRestriction"},
		{"service-account-issuer", "https://kubernetes.default.svc"},
		{"service-account-key-file", certs + "serviceaccount.key"},
		{"service-account-signing-key-file", certs + "serviceaccount.key"},
		{"api-audiences", "https://kubernetes.default.svc"},
		{"service-cluster-ip-range", ServiceCIDR},
		{"etcd-servers", EtcdSocketURL},
		{"etcd-cafile", certs + "etcd-ca.crt"},
		{"etcd-certfile", certs + "apiserver-etcd-client.crt"},
		{"etcd-keyfile", certs + "apiserver-etcd-client.key"},
		{"kubelet-client-certificate", certs + "apiserver-kubelet-client.crt"},
		{"kubelet-client-key", certs + "apiserver-kubelet-client.key"},
		{"kubelet-certificate-authority", certs + "ca.crt"},
		{"kubelet-preferred-address-types", "InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP"},
		{"requestheader-client-ca-file", certs + "front-proxy-ca.crt"},
		{"requestheader-allowed-names", "front-proxy-client"},
		{"requestheader-extra-headers-prefix", "X-Remote-Extra-"},
		{"requestheader-group-headers", "X-Remote-Group"},
		{"requestheader-username-headers", "X-Remote-User"},
		{"proxy-client-cert-file", certs + "front-proxy-client.crt"},
		{"proxy-client-key-file", certs + "front-proxy-client.key"},
		{"allow-privileged", "true"},
		// Closes watches (held by the in-process controller-manager and
		// scheduler) on shutdown, so a stop takes seconds, not the full
		// request timeout.
		{"shutdown-watch-termination-grace-period", "2s"},
		{"profiling", "false"},
	}, TLSFlags(APIServerComponent)...))
}

// ControllerManagerArgs renders args/kube-controller-manager.
func ControllerManagerArgs(l datadir.Layout, portOffset int) *args.File {
	const certs = "${DATA_DIR}/certs/"
	const kubeconfig = "${DATA_DIR}/credentials/controller.config"
	return newArgs(l, ControllerManagerComponent, "Flags for kube-controller-manager (upstream flag names).", append([][2]string{
		{"kubeconfig", kubeconfig},
		{"authentication-kubeconfig", kubeconfig},
		{"authorization-kubeconfig", kubeconfig},
		{"secure-port", port("kube-controller-manager", portOffset)},
		{"bind-address", bind("kube-controller-manager")},
		{"tls-cert-file", certs + "kube-controller-manager.crt"},
		{"tls-private-key-file", certs + "kube-controller-manager.key"},
		{"client-ca-file", certs + "ca.crt"},
		{"requestheader-client-ca-file", certs + "front-proxy-ca.crt"},
		{"service-account-private-key-file", certs + "serviceaccount.key"},
		{"root-ca-file", certs + "ca.crt"},
		{"cluster-signing-cert-file", certs + "ca.crt"},
		{"cluster-signing-key-file", certs + "ca.key"},
		{"use-service-account-credentials", "true"},
		{"service-cluster-ip-range", ServiceCIDR},
		{"cluster-cidr", ClusterCIDR},
		{"flex-volume-plugin-dir", "${DATA_DIR}/var/kubelet-plugins/volume/exec"},
		{"profiling", "false"},
	}, append(ClusterFlags(ControllerManagerComponent), TLSFlags(ControllerManagerComponent)...)...))
}

// SchedulerArgs renders args/kube-scheduler.
func SchedulerArgs(l datadir.Layout, portOffset int) *args.File {
	const certs = "${DATA_DIR}/certs/"
	const kubeconfig = "${DATA_DIR}/credentials/scheduler.config"
	return newArgs(l, SchedulerComponent, "Flags for kube-scheduler (upstream flag names).", append([][2]string{
		{"kubeconfig", kubeconfig},
		{"authentication-kubeconfig", kubeconfig},
		{"authorization-kubeconfig", kubeconfig},
		{"secure-port", port("kube-scheduler", portOffset)},
		{"bind-address", bind("kube-scheduler")},
		{"tls-cert-file", certs + "kube-scheduler.crt"},
		{"tls-private-key-file", certs + "kube-scheduler.key"},
		{"client-ca-file", certs + "ca.crt"},
		{"requestheader-client-ca-file", certs + "front-proxy-ca.crt"},
		{"profiling", "false"},
	}, append(ClusterFlags(SchedulerComponent), TLSFlags(SchedulerComponent)...)...))
}

// AuthWebhookArgs renders args/auth-webhook, kubeseed's webhook for
// kube-apiserver: token authentication and the deny authorizer.
func AuthWebhookArgs(l datadir.Layout, portOffset int) *args.File {
	const certs = "${DATA_DIR}/certs/"
	return newArgs(l, AuthWebhookComponent, "Flags for kubeseed's auth webhook: it checks bearer tokens (and ends the RBAC chain) for kube-apiserver.", [][2]string{
		{"secure-port", port("auth-webhook", portOffset)},
		{"bind-address", bind("auth-webhook")},
		{"tls-cert-file", certs + "auth-webhook.crt"},
		{"tls-private-key-file", certs + "auth-webhook.key"},
		{"client-ca-file", certs + "ca.crt"},
		{"token-auth-file", "${DATA_DIR}/credentials/known_tokens.csv"},
	})
}

// ClusterAgentComponent is the cluster agent's args file.
const ClusterAgentComponent = "cluster-agent"

// ClusterAgentArgs renders args/cluster-agent.
func ClusterAgentArgs(l datadir.Layout, portOffset int) *args.File {
	const certs = "${DATA_DIR}/certs/"
	return newArgs(l, ClusterAgentComponent, "Flags for kubeseed's cluster agent: `kubeseed join` of the nodes `kubeseed add-node` admits.", [][2]string{
		{"secure-port", port("cluster-agent", portOffset)},
		{"bind-address", bind("cluster-agent")},
		{"tls-cert-file", certs + "cluster-agent.crt"},
		{"tls-private-key-file", certs + "cluster-agent.key"},
		{"ca-cert-file", certs + "ca.crt"},
		{"ca-key-file", certs + "ca.key"},
		{"kubeconfig", "${DATA_DIR}/credentials/client.config"},
		{"etcd-servers", EtcdSocketURL},
		{"etcd-cafile", certs + "etcd-ca.crt"},
		{"etcd-certfile", certs + "apiserver-etcd-client.crt"},
		{"etcd-keyfile", certs + "apiserver-etcd-client.key"},
		{"worker-cert-lifetime", "2160h"},
	})
}

// EtcdSocketURL is etcd's client socket (TLS, client certificates as on
// the port). Its directory is root's only; the local apiserver uses it.
const EtcdSocketURL = "unixs://${DATA_DIR}/run/etcd/" + pki.EtcdSocketName

// EtcdHAPeerURL is the host's peer listener, the one other control planes
// reach; ip "" is every address.
func EtcdHAPeerURL(ip string, portOffset int) string {
	if ip == "" {
		ip = services.BindHost.Address()
	}
	return "https://" + net.JoinHostPort(ip, strconv.Itoa(services.MustLookup("etcd-ha").Port+portOffset))
}

// EtcdPeerListenURLs are the loopback 2380 the spec lists and the host's
// 19001, both from the first start so a join needs no etcd restart.
func EtcdPeerListenURLs(portOffset int) string {
	return "https://" + services.MustLookup("etcd-peer").ListenAddr(portOffset) + "," + EtcdHAPeerURL("", portOffset)
}

// EtcdArgs renders args/etcd for a new node.
func EtcdArgs(l datadir.Layout, nodeName string, portOffset int) *args.File {
	client := services.MustLookup("etcd")
	peer := services.MustLookup("etcd-peer")
	clientPort := strconv.Itoa(client.Port + portOffset)
	peerURL := "https://127.0.0.1:" + strconv.Itoa(peer.Port+portOffset)
	f := args.New(l.Args(EtcdComponent))
	f.AddComment("Flags for the embedded etcd member (etcd's own flag names). Edit, then restart kubeseed.")
	f.AddComment("A single node advertises its loopback peer URL; the first control-plane join moves it to the host's " + strconv.Itoa(services.MustLookup("etcd-ha").Port+portOffset) + ".")
	for _, kv := range [][2]string{
		{"name", nodeName},
		{"data-dir", "${DATA_DIR}/var/etcd"},
		{"listen-client-urls", "https://" + client.ListenAddr(portOffset) + "," + EtcdSocketURL},
		{"advertise-client-urls", "https://127.0.0.1:" + clientPort},
		{"listen-peer-urls", EtcdPeerListenURLs(portOffset)},
		{"initial-advertise-peer-urls", peerURL},
		{"initial-cluster", nodeName + "=" + peerURL},
		{"initial-cluster-state", "new"},
		{"client-cert-auth", "true"},
		{"trusted-ca-file", "${DATA_DIR}/certs/etcd-ca.crt"},
		{"cert-file", "${DATA_DIR}/certs/etcd-server.crt"},
		{"key-file", "${DATA_DIR}/certs/etcd-server.key"},
		{"peer-client-cert-auth", "true"},
		{"peer-trusted-ca-file", "${DATA_DIR}/certs/etcd-ca.crt"},
		{"peer-cert-file", "${DATA_DIR}/certs/etcd-peer.crt"},
		{"peer-key-file", "${DATA_DIR}/certs/etcd-peer.key"},
		{"log-level", "warn"},
	} {
		f.Set(kv[0], kv[1])
	}
	for _, kv := range TLSFlags(EtcdComponent) {
		f.Set(kv[0], kv[1])
	}
	return f
}
