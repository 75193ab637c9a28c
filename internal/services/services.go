// Package services is the one declarative table of every network endpoint
// kubeseed serves (or deliberately does not serve). Component flags, the
// status command, the docs' port table and the port-audit test are all
// derived from it.
package services

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
)

// Bind says which interface a service listens on.
type Bind string

const (
	// BindHost is the default host interface; like MicroK8s we listen on
	// all addresses so the service follows the host's IPs.
	BindHost Bind = "host"
	// BindLoopback is reachable from this host only.
	BindLoopback Bind = "loopback"
)

// Address is the listen address for the bind mode.
func (b Bind) Address() string {
	if b == BindLoopback {
		return "127.0.0.1"
	}
	return "0.0.0.0"
}

// PortSource says how a component's args file carries the port, so the
// running value can be read back from the args file (the source of truth).
type PortSource int

const (
	// PortFlag: the flag value is the port number (--secure-port=16443).
	PortFlag PortSource = iota
	// URLFlag: the flag value is a comma-separated list of URLs (etcd).
	URLFlag
	// HostPortFlag: the flag value is host:port (--healthz-bind-address).
	HostPortFlag
	// YAMLField: Flag names a top-level field of the YAML file
	// args/<ConfigFile> holding the port (the kubelet's config file).
	YAMLField
)

// RoleSet says on which nodes a service runs.
type RoleSet uint8

const (
	OnControlPlane RoleSet = 1 << iota
	OnWorker
	OnEvery = OnControlPlane | OnWorker
)

// On reports whether a node of role runs services of set r.
func (r RoleSet) On(role cluster.Role) bool {
	return role == cluster.Worker && r&OnWorker != 0 || role != cluster.Worker && r&OnControlPlane != 0
}

func (r RoleSet) String() string {
	switch r {
	case OnControlPlane:
		return "control planes"
	case OnWorker:
		return "workers"
	case OnEvery:
		return "every node"
	}
	return "none"
}

// Service is one row of the table.
type Service struct {
	Name      string // stable identifier, e.g. "kube-apiserver"
	Component string // the args/<component> file that configures it
	Port      int    // default port (tests add an offset)
	Protocol  string // "tcp" or "udp"
	Bind      Bind
	Roles     RoleSet // the nodes that run it
	TLS       bool
	Authn     string // who may connect, in words
	Authz     string // what they may do, in words
	Flag      string // args flag (or YAML field) carrying the port
	Source    PortSource
	// ConfigFile, for YAMLField, is the YAML file under args/, and
	// YAMLDefault the port upstream uses when the field is absent ("" when
	// the field is required).
	ConfigFile  string
	YAMLDefault string
	// Plain marks a service without TLS; its health check is plain HTTP.
	Plain bool
	// Health check: GET HealthPath over TLS trusting the TrustCA
	// certificate and presenting ClientCert (names from pki.Table). An
	// empty HealthPath means a TLS handshake is the check.
	HealthPath string
	TrustCA    string
	ClientCert string
	// Removed marks ports MicroK8s documents but upstream dropped; nothing
	// may listen there, and the port audit checks it.
	Removed bool
	// Optional marks a port its args file may turn off with 0, as upstream
	// allows (the kubelet's readOnlyPort and healthzPort): Ports reports 0,
	// and start, status and the port audit skip it.
	Optional bool
	Note     string
}

// Table lists every endpoint kubeseed serves or refuses to serve. The start
// order of the components is the supervisor's, in package daemon.
var Table = []Service{
	{
		Name: "etcd", Component: "etcd", Port: 12379, Protocol: "tcp", Bind: BindHost, Roles: OnControlPlane, TLS: true,
		Authn: "client certificate signed by the etcd CA", Authz: "any authenticated client",
		Flag: "listen-client-urls", Source: URLFlag,
		HealthPath: "/health", TrustCA: "etcd-ca", ClientCert: "apiserver-etcd-client",
		Note: "datastore client API",
	},
	{
		Name: "etcd-peer", Component: "etcd", Port: 2380, Protocol: "tcp", Bind: BindLoopback, Roles: OnControlPlane, TLS: true,
		Authn: "peer certificate signed by the etcd CA", Authz: "cluster members",
		Flag: "listen-peer-urls", Source: URLFlag,
		TrustCA: "etcd-ca", ClientCert: "etcd-peer",
		Note: "datastore peer traffic on this host",
	},
	{
		Name: "etcd-ha", Component: "etcd", Port: 19001, Protocol: "tcp", Bind: BindHost, Roles: OnControlPlane, TLS: true,
		Authn: "peer certificate signed by the etcd CA (each node its own)", Authz: "cluster members",
		Flag: "listen-peer-urls", Source: URLFlag,
		TrustCA: "etcd-ca", ClientCert: "etcd-peer",
		Note: "HA datastore: etcd peer traffic between control planes",
	},
	{
		Name: "auth-webhook", Component: "auth-webhook", Port: 16444, Protocol: "tcp", Bind: BindLoopback, Roles: OnControlPlane, TLS: true,
		Authn: "client certificate kube-apiserver-auth-webhook-client, signed by the cluster CA", Authz: "kube-apiserver only",
		Flag: "secure-port", Source: PortFlag,
		HealthPath: "/healthz", TrustCA: "ca", ClientCert: "apiserver-auth-webhook-client",
		Note: "kubeseed's webhook for kube-apiserver: checks bearer tokens against credentials/known_tokens.csv (reloaded on change) and ends the RBAC chain after `enable rbac`",
	},
	{
		Name: "kube-apiserver", Component: "kube-apiserver", Port: 16443, Protocol: "tcp", Bind: BindHost, Roles: OnControlPlane, TLS: true,
		Authn: "static token file (through auth-webhook), X.509 client certificates; anonymous only on /healthz, /livez, /readyz",
		Authz: "AlwaysAllow; Node,RBAC after `kubeseed enable rbac`",
		Flag:  "secure-port", Source: PortFlag,
		HealthPath: "/readyz", TrustCA: "ca",
		Note: "Kubernetes API",
	},
	{
		Name: "kube-controller-manager", Component: "kube-controller-manager", Port: 10257, Protocol: "tcp", Bind: BindHost, Roles: OnControlPlane, TLS: true,
		Authn: "delegated to kube-apiserver; anonymous disabled", Authz: "delegated to kube-apiserver",
		Flag: "secure-port", Source: PortFlag,
		HealthPath: "/healthz", TrustCA: "ca", ClientCert: "admin",
		Note: "health and metrics",
	},
	{
		Name: "kube-scheduler", Component: "kube-scheduler", Port: 10259, Protocol: "tcp", Bind: BindHost, Roles: OnControlPlane, TLS: true,
		Authn: "delegated to kube-apiserver; anonymous disabled", Authz: "delegated to kube-apiserver",
		Flag: "secure-port", Source: PortFlag,
		HealthPath: "/healthz", TrustCA: "ca", ClientCert: "admin",
		Note: "health and metrics",
	},
	{
		Name: "cluster-agent", Component: "cluster-agent", Port: 25000, Protocol: "tcp", Bind: BindHost, Roles: OnControlPlane, TLS: true,
		Authn: "a join token for the join endpoint (rate-limited per source address); a client certificate signed by the cluster CA for every other endpoint",
		Authz: "a join token opens its own role's join only; a node's certificate acts for that node only",
		Flag:  "secure-port", Source: PortFlag,
		HealthPath: "/health", TrustCA: "ca",
		Note: "cluster agent: `kubeseed join` of nodes made with `kubeseed add-node`; control-plane nodes only",
	},
	{
		Name: "apiserver-proxy", Component: "apiserver-proxy", Port: 16443, Protocol: "tcp", Bind: BindLoopback, Roles: OnWorker, TLS: true,
		Authn: "none of its own: TLS passes through, the apiservers authenticate", Authz: "the apiservers'",
		Flag: "listen", Source: HostPortFlag,
		HealthPath: "/readyz", TrustCA: "ca",
		Note: "a worker's load balancer to the cluster's apiservers, health-checked, for its kubelet and kube-proxy",
	},
	{
		Name: "containerd-metrics", Component: "containerd", Port: 1338, Protocol: "tcp", Bind: BindLoopback, Roles: OnEvery,
		Authn: "none (loopback only)", Authz: "read-only metrics",
		Flag: "metrics-address", Source: HostPortFlag, Plain: true,
		HealthPath: "/v1/metrics",
		Note:       "containerd metrics; containerd's API is the unix socket run/containerd.sock",
	},
	{
		Name: "containerd-stream", Component: "containerd", Port: 10010, Protocol: "tcp", Bind: BindLoopback, Roles: OnEvery, Plain: true,
		Authn: "single-use tokens issued to the kubelet", Authz: "the exec, attach or port-forward session the token names",
		Flag: "stream-address", Source: HostPortFlag,
		Note: "CRI streaming server; the kubelet proxies kubectl exec/attach/port-forward to it",
	},
	{
		Name: "kubelet", Component: "kubelet", Port: 10250, Protocol: "tcp", Bind: BindHost, Roles: OnEvery, TLS: true,
		Authn: "X.509 client certificate signed by the cluster CA, or a bearer token checked by the apiserver; anonymous disabled",
		Authz: "delegated to kube-apiserver (Webhook)",
		Flag:  "port", Source: YAMLField, ConfigFile: "kubelet.yaml", YAMLDefault: "10250",
		HealthPath: "/healthz", TrustCA: "ca", ClientCert: "admin",
		Note: "kubelet API (logs, exec, port-forward)",
	},
	{
		Name: "kubelet-readonly", Component: "kubelet", Port: 10255, Protocol: "tcp", Bind: BindHost, Roles: OnEvery, Plain: true,
		Authn: "none", Authz: "read-only endpoints (/pods, /healthz, /spec)",
		Flag: "readOnlyPort", Source: YAMLField, ConfigFile: "kubelet.yaml", YAMLDefault: "0", Optional: true,
		HealthPath: "/healthz",
		Note:       "read-only kubelet port, as the spec lists it; `readOnlyPort: 0` in args/kubelet.yaml turns it off",
	},
	{
		Name: "kubelet-healthz", Component: "kubelet", Port: 10248, Protocol: "tcp", Bind: BindLoopback, Roles: OnEvery, Plain: true,
		Authn: "none (loopback only)", Authz: "health only",
		Flag: "healthzPort", Source: YAMLField, ConfigFile: "kubelet.yaml", YAMLDefault: "10248", Optional: true,
		HealthPath: "/healthz",
		Note:       "kubelet health; `healthzPort: 0` in args/kubelet.yaml turns it off",
	},
	{
		Name: "kube-proxy-metrics", Component: "kube-proxy", Port: 10249, Protocol: "tcp", Bind: BindLoopback, Roles: OnEvery, Plain: true,
		Authn: "none (loopback only)", Authz: "read-only metrics",
		Flag: "metrics-bind-address", Source: HostPortFlag,
		HealthPath: "/metrics",
		Note:       "kube-proxy metrics",
	},
	{
		Name: "kube-proxy-healthz", Component: "kube-proxy", Port: 10256, Protocol: "tcp", Bind: BindLoopback, Roles: OnEvery, Plain: true,
		Authn: "none (loopback only)", Authz: "health only",
		Flag: "healthz-bind-address", Source: HostPortFlag,
		HealthPath: "/healthz",
		Note:       "kube-proxy health",
	},
	{
		Name: "vxlan", Component: "overlay", Port: 4789, Protocol: "udp", Bind: BindHost, Roles: OnEvery, Plain: true,
		Authn: "source address: only the cluster's Node InternalIPs (ipset kubeseed-nodes, kept from the Node list); the rest is dropped",
		Authz: "decapsulates into the pod network",
		Flag:  "port", Source: PortFlag,
		Note: "pod network across nodes: flannel's VXLAN in the kernel (no process socket); same port on every node, no test offset",
	},
	{
		Name: "kube-scheduler-insecure", Component: "kube-scheduler", Port: 10251, Protocol: "tcp", Bind: BindLoopback, Roles: OnControlPlane,
		Removed: true, Note: "insecure HTTP port, removed upstream; not served",
	},
	{
		Name: "kube-controller-manager-insecure", Component: "kube-controller-manager", Port: 10252, Protocol: "tcp", Bind: BindLoopback, Roles: OnControlPlane,
		Removed: true, Note: "insecure HTTP port, removed upstream; not served",
	},
}

// Lookup returns the named service.
func Lookup(name string) (Service, error) {
	for _, s := range Table {
		if s.Name == name {
			return s, nil
		}
	}
	return Service{}, fmt.Errorf("unknown service %q", name)
}

// MustLookup is Lookup for names that are compile-time constants in our code.
func MustLookup(name string) Service {
	s, err := Lookup(name)
	if err != nil {
		panic(err)
	}
	return s
}

// Served returns the services that listen (not Removed), on any node.
func Served() []Service {
	var out []Service
	for _, s := range Table {
		if !s.Removed {
			out = append(out, s)
		}
	}
	return out
}

// ServedIn returns the services the node on l runs, by its role.
func ServedIn(l datadir.Layout) ([]Service, error) {
	st, err := cluster.Load(l)
	if err != nil {
		return nil, err
	}
	var out []Service
	for _, s := range Served() {
		if s.Roles.On(st.Role) {
			out = append(out, s)
		}
	}
	return out, nil
}

// ListenAddr is the default host:port with the given port offset.
func (s Service) ListenAddr(offset int) string {
	return net.JoinHostPort(s.Bind.Address(), strconv.Itoa(s.Port+offset))
}

// setting names where the port is set: --flag, or the YAML field.
func (s Service) setting() string {
	if s.Source == YAMLField {
		return s.Flag
	}
	return "--" + s.Flag
}

// PortFromFlag extracts the port from the value of s.Flag as written in an
// args file. 0 means off, which only an Optional service accepts.
func (s Service) PortFromFlag(value string) (int, error) {
	var portStr string
	switch s.Source {
	case PortFlag, YAMLField:
		portStr = value
	case HostPortFlag:
		_, p, err := net.SplitHostPort(value)
		if err != nil {
			return 0, fmt.Errorf("%s=%q: %w", s.setting(), value, err)
		}
		portStr = p
	case URLFlag:
		u, err := s.urlIn(value)
		if err != nil {
			return 0, fmt.Errorf("%s=%q: %w", s.setting(), value, err)
		}
		portStr = u.Port()
	}
	p, err := strconv.Atoi(strings.TrimSpace(portStr))
	if err == nil && p == 0 && s.Optional {
		return 0, nil
	}
	if err != nil || p <= 0 || p > 65535 {
		if s.Optional {
			return 0, fmt.Errorf("%s=%q: not a port (1-65535, or 0 to turn %s off)", s.setting(), value, s.Name)
		}
		return 0, fmt.Errorf("%s=%q: not a port (1-65535)", s.setting(), value)
	}
	return p, nil
}

// urlIn picks the service's URL from a list flag: one flag may carry
// several services (etcd's peer URLs are the loopback 2380 and the host's
// 19001) and a unix socket. The TCP URL on the service's bind address wins;
// else the first TCP one.
func (s Service) urlIn(value string) (*url.URL, error) {
	var tcp []*url.URL
	for _, part := range strings.Split(value, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			continue
		}
		if u.Hostname() == s.Bind.Address() {
			return u, nil
		}
		tcp = append(tcp, u)
	}
	if len(tcp) == 0 {
		return nil, errors.New("no TCP URL")
	}
	return tcp[0], nil
}

// PortIn reads the service's port from its component's args file.
func (s Service) PortIn(f *args.File) (int, error) {
	v, ok := f.Get(s.Flag)
	if !ok {
		return 0, fmt.Errorf("%s: --%s is not set", f.Path, s.Flag)
	}
	p, err := s.PortFromFlag(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", f.Path, err)
	}
	return p, nil
}

// Ports reads the port of every served service from the args files in dir
// layout l: the ports the node runs with. An Optional service that is off
// has port 0.
func Ports(l datadir.Layout) (map[string]int, error) {
	files := map[string]*args.File{}
	yamls := map[string]map[string]any{}
	ports := map[string]int{}
	served, err := ServedIn(l)
	if err != nil {
		return nil, err
	}
	for _, s := range served {
		if s.Source == YAMLField {
			path := l.Args(s.ConfigFile)
			doc, ok := yamls[s.ConfigFile]
			if !ok {
				data, err := os.ReadFile(path)
				if err != nil {
					return nil, fmt.Errorf("read %s: %w", path, err)
				}
				if err := yaml.Unmarshal(data, &doc); err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
				yamls[s.ConfigFile] = doc
			}
			v, set := doc[s.Flag]
			if !set || v == nil {
				if s.YAMLDefault == "" {
					return nil, fmt.Errorf("%s: field %s is not set; it is the port of %s", path, s.Flag, s.Name)
				}
				v = s.YAMLDefault
			}
			p, err := s.PortFromFlag(fmt.Sprint(v))
			if err != nil {
				return nil, fmt.Errorf("%s: field %w", path, err)
			}
			ports[s.Name] = p
			continue
		}
		f, ok := files[s.Component]
		if !ok {
			var err error
			if f, err = args.Load(l.Args(s.Component)); err != nil {
				return nil, err
			}
			files[s.Component] = f
		}
		p, err := s.PortIn(f)
		if err != nil {
			return nil, err
		}
		ports[s.Name] = p
	}
	return ports, nil
}

// MarkdownTable renders the table for the docs.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| Port | Service | Runs on | Binds | TLS | Authentication | Authorization | Notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, s := range Table {
		tls := "no"
		if s.TLS {
			tls = "yes"
		}
		if s.Removed {
			fmt.Fprintf(&b, "| %d/%s | %s | — | — | — | — | — | %s |\n", s.Port, s.Protocol, s.Name, s.Note)
			continue
		}
		fmt.Fprintf(&b, "| %d/%s | %s | %s | %s (%s) | %s | %s | %s | %s |\n",
			s.Port, s.Protocol, s.Name, s.Roles, s.Bind, s.Bind.Address(), tls, s.Authn, s.Authz, s.Note)
	}
	return b.String()
}
