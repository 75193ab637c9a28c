// Package status reports on a node: whether it runs, each service's
// health, the authorization mode and each certificate's days left.
package status

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeseed/kubeseed/internal/addons/dns"
	"github.com/kubeseed/kubeseed/internal/agent"
	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authwebhook"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/certrenew"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/controlplane"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/services"
)

// Service is one served port's state.
type Service struct {
	Name    string
	Port    int
	Bind    string
	Healthy bool
	// Off marks an optional port its args file turned off (port 0).
	Off bool
	Err error
}

// Cert is one certificate's expiry.
type Cert struct {
	Name     string
	NotAfter time.Time
	DaysLeft int
	Err      error
}

// Report is the whole status.
type Report struct {
	PID int
	// Role is the node's: a control plane, or a worker that joined one.
	Role          cluster.Role
	Authorization string
	Services      []Service
	Certs         []Cert
	// Renewal is the running node's certificate renewal state (nil when
	// not running).
	Renewal *certrenew.State
	// Node is the Kubernetes Node object's readiness.
	Node NodeState
	// Adaptations are the host facts the configuration adapted to.
	Adaptations []string
	// DNS is the DNS addon's state.
	DNS DNSState
	// Nodes are the cluster's nodes, as a running control plane sees them.
	Nodes []ClusterNode
	// Etcd are the datastore's members, as a running control plane sees
	// them.
	Etcd []agent.EtcdMember
	// TokenFile is why the running auth webhook rejected
	// credentials/known_tokens.csv (path:line): until it is fixed no token
	// authenticates. nil when it is in use or could not be asked.
	TokenFile error
}

// DNSState is the DNS addon: whether config/dns enables it and, on a
// running node, whether its Deployment is Ready.
type DNSState struct {
	Enabled bool
	Ready   bool
	Detail  string
}

// ClusterNode is one node of the cluster.
type ClusterNode struct {
	Name, Role, IP string
	Ready          bool
}

// NodeState is the Node's Ready condition as the apiserver reports it.
type NodeState struct {
	Name   string
	Ready  bool
	Reason string
}

// Ready reports whether every service is healthy and the token file is in
// use.
func (r *Report) Ready() bool {
	if r.PID == 0 || len(r.Services) == 0 || r.TokenFile != nil && r.Role != cluster.Worker {
		return false
	}
	for _, s := range r.Services {
		if !s.Healthy {
			return false
		}
	}
	return r.Node.Ready
}

// Collect probes the node described by l; pid is the running process (0:
// not running, and services are not probed).
func Collect(ctx context.Context, l datadir.Layout, pid int, now time.Time) (*Report, error) {
	st, err := cluster.Load(l)
	if err != nil {
		return nil, err
	}
	r := &Report{PID: pid, Role: st.Role}
	if st.Role == cluster.Worker {
		return collectWorker(ctx, l, r, now)
	}
	r.Authorization = Authorization(l)
	ports, err := collectServices(ctx, l, r)
	if err != nil {
		return nil, err
	}
	if pid != 0 {
		r.TokenFile = tokenFile(ctx, l)
	}
	store := pki.Store{Dir: l.CertsDir()}
	for _, spec := range pki.Table {
		if spec.KeyOnly {
			continue
		}
		c := Cert{Name: spec.Name + ".crt"}
		cert, err := pki.LoadCert(store.CertPath(spec.Name))
		if err != nil {
			c.Err = err
		} else {
			c.NotAfter = cert.NotAfter
			c.DaysLeft = int(cert.NotAfter.Sub(now).Hours() / 24)
		}
		r.Certs = append(r.Certs, c)
	}
	if a, err := hostinfo.Detect(); err == nil {
		r.Adaptations = a.Describe()
	}
	r.Node.Name = nodeName(l)
	if pid != 0 {
		r.Node.Ready, r.Node.Reason = nodeReady(ctx, l, ports["kube-apiserver"], r.Node.Name)
	}
	r.DNS = dnsState(ctx, l, pid != 0)
	if pid != 0 {
		r.Nodes = clusterNodes(ctx, l)
		r.Etcd = etcdMembers(ctx, l)
	}
	r.Renewal = renewalOf(l, pid)
	return r, nil
}

// renewalOf is the renewal state the running node pid wrote, if any.
func renewalOf(l datadir.Layout, pid int) *certrenew.State {
	if pid == 0 {
		return nil
	}
	st, err := certrenew.ReadState(l.CertRenewalState())
	if err != nil || st == nil || st.PID != pid {
		return nil
	}
	return st
}

// tokenFile asks the running auth webhook whether it rejected the token
// file. Failing to ask is no answer: the services table shows why.
func tokenFile(ctx context.Context, l datadir.Layout) error {
	c, err := authwebhook.NodeClient(l)
	if err != nil {
		return nil
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := c.Loaded(ctx)
	if err != nil || st.Err == "" {
		return nil
	}
	return errors.New(st.Err)
}

func dnsState(ctx context.Context, l datadir.Layout, running bool) DNSState {
	c, err := dns.LoadConfig(l)
	if err != nil {
		return DNSState{Detail: err.Error()}
	}
	st := DNSState{Enabled: c.Enabled}
	if !c.Enabled || !running {
		return st
	}
	cs, err := controlplane.AdminClient(l)
	if err != nil {
		st.Detail = err.Error()
		return st
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	rd, err := dns.DeploymentReadiness(ctx, cs)
	if err != nil {
		st.Detail = err.Error()
		return st
	}
	st.Ready, st.Detail = rd.Ready, rd.Detail
	return st
}

// Authorization describes kube-apiserver's authorization as its args file
// and --authorization-config say, e.g. "AlwaysAllow" or "Node,RBAC".
func Authorization(l datadir.Layout) string {
	f, err := args.Load(l.Args(defaults.APIServerComponent))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	path, _, ok, err := f.Lookup("authorization-config", l.Vars())
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if !ok {
		if mode, ok := f.Get("authorization-mode"); ok {
			return mode
		}
		return "AlwaysAllow" // kube-apiserver's default
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	chain, err := authz.Parse(path, data)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return chain.Effective()
}

func probe(ctx context.Context, l datadir.Layout, s services.Service, port int) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if s.Protocol == "udp" {
		bound, err := hostinfo.UDPBound(port)
		if err == nil && !bound {
			err = fmt.Errorf("nothing is bound to UDP port %d", port)
		}
		return err
	}
	if s.Plain && s.HealthPath == "" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	if s.Plain {
		return health.Check(ctx, fmt.Sprintf("http://%s%s", addr, s.HealthPath), nil)
	}
	certFile, keyFile := "", ""
	healthPath := s.HealthPath
	if s.ClientCert != "" {
		certFile, keyFile = l.Cert(s.ClientCert), l.Key(s.ClientCert)
		// A worker holds no admin certificate: its TLS handshake is the
		// check there.
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			certFile, keyFile, healthPath = "", "", ""
		}
	}
	tlsCfg, err := health.ClientTLS(l.Cert(s.TrustCA), certFile, keyFile)
	if err != nil {
		return err
	}
	if healthPath == "" {
		d := tls.Dialer{Config: tlsCfg}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return health.Check(ctx, fmt.Sprintf("https://%s%s", addr, s.HealthPath), tlsCfg)
}

// nodeName is the kubelet's --hostname-override from args/kubelet.
func nodeName(l datadir.Layout) string {
	f, err := args.Load(l.Args(defaults.KubeletComponent))
	if err != nil {
		return ""
	}
	name, _ := f.Get("hostname-override")
	return name
}

// nodeReady asks the apiserver, as admin, for the Node's Ready condition.
func nodeReady(ctx context.Context, l datadir.Layout, apiPort int, name string) (bool, string) {
	return nodeReadyAs(ctx, l, apiPort, name, "admin")
}

// nodeReadyAs asks with the named client certificate.
func nodeReadyAs(ctx context.Context, l datadir.Layout, apiPort int, name, cert string) (bool, string) {
	if name == "" {
		return false, "no --hostname-override in args/kubelet"
	}
	tlsCfg, err := health.ClientTLS(l.Cert("ca"), l.Cert(cert), l.Key(cert))
	if err != nil {
		return false, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	url := fmt.Sprintf("https://127.0.0.1:%d/api/v1/nodes/%s", apiPort, name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return false, "not registered yet"
	}
	var node struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&node); err != nil {
		return false, fmt.Sprintf("HTTP %d: %v", resp.StatusCode, err)
	}
	for _, c := range node.Status.Conditions {
		if c.Type == "Ready" {
			if c.Status == "True" {
				return true, ""
			}
			return false, c.Reason + ": " + c.Message
		}
	}
	return false, "no Ready condition yet"
}

// collectServices probes, on a running node, each service its role runs,
// and returns the ports from the args files.
func collectServices(ctx context.Context, l datadir.Layout, r *Report) (map[string]int, error) {
	ports, err := services.Ports(l)
	if err != nil {
		return nil, err
	}
	served, err := services.ServedIn(l)
	if err != nil {
		return nil, err
	}
	for _, s := range served {
		st := Service{Name: s.Name, Port: ports[s.Name], Bind: s.Bind.Address()}
		if st.Port == 0 {
			st.Off, st.Healthy = true, true
		} else if r.PID != 0 {
			st.Err = probe(ctx, l, s, ports[s.Name])
			st.Healthy = st.Err == nil
		}
		r.Services = append(r.Services, st)
	}
	return ports, nil
}

// collectWorker is Collect for a worker: its services, its certificates
// from the cluster, and its Node as its kubelet sees it through the load
// balancer.
func collectWorker(ctx context.Context, l datadir.Layout, r *Report, now time.Time) (*Report, error) {
	r.Authorization = "decided by the control plane"
	ports, err := collectServices(ctx, l, r)
	if err != nil {
		return nil, err
	}
	for _, name := range append([]string{"ca"}, bootstrap.WorkerCerts...) {
		c := Cert{Name: name + ".crt"}
		if cert, err := pki.LoadCert(l.Cert(name)); err != nil {
			c.Err = err
		} else {
			c.NotAfter, c.DaysLeft = cert.NotAfter, int(cert.NotAfter.Sub(now).Hours()/24)
		}
		r.Certs = append(r.Certs, c)
	}
	if a, err := hostinfo.Detect(); err == nil {
		r.Adaptations = a.Describe()
	}
	r.Node.Name = nodeName(l)
	if r.PID != 0 {
		r.Node.Ready, r.Node.Reason = nodeReadyAs(ctx, l, ports["apiserver-proxy"], r.Node.Name, "kubelet")
	}
	r.Renewal = renewalOf(l, r.PID)
	return r, nil
}

// etcdMembers lists etcd's members; failing to is no answer.
func etcdMembers(ctx context.Context, l datadir.Layout) []agent.EtcdMember {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := agent.EtcdMembers(ctx, l)
	if err != nil {
		return nil
	}
	return m
}

// clusterNodes lists the cluster's nodes, as admin.
func clusterNodes(ctx context.Context, l datadir.Layout) []ClusterNode {
	kube, err := agent.AdminClient(l)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []ClusterNode
	for _, n := range list.Items {
		cn := ClusterNode{Name: n.Name, Role: "control-plane"}
		if _, ok := n.Labels["node-role.kubernetes.io/worker"]; ok {
			cn.Role = "worker"
		}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				cn.IP = a.Address
			}
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				cn.Ready = c.Status == corev1.ConditionTrue
			}
		}
		out = append(out, cn)
	}
	return out
}
