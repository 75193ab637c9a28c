package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/procfs"
)

// Default ports, as in internal/services.Table; the port-audit test checks
// this copy against the running node, so a drift fails loudly.
var defaultPorts = map[string]int{
	"etcd":                    12379,
	"etcd-peer":               2380,
	"kube-apiserver":          16443,
	"kube-controller-manager": 10257,
	"kube-scheduler":          10259,
	"containerd-metrics":      1338,
	"containerd-stream":       10010,
	"kubelet":                 10250,
	"kubelet-readonly":        10255,
	"kubelet-healthz":         10248,
	"kube-proxy-metrics":      10249,
	"kube-proxy-healthz":      10256,
	"auth-webhook":            16444,
	"cluster-agent":           25000,
	"etcd-ha":                 19001,
}

// vxlanPort is the overlay's UDP port: a kernel socket, no process holds it,
// and no test offset applies.
const vxlanPort = 4789

// workerPorts are the services a worker runs, with its load balancer to
// the apiservers on the apiserver's port (loopback only).
var workerPorts = map[string]bool{
	"containerd-metrics": true, "containerd-stream": true, "kubelet": true, "kubelet-readonly": true,
	"kubelet-healthz": true, "kube-proxy-metrics": true, "kube-proxy-healthz": true,
}

// loopbackOnly are the services bound to 127.0.0.1; the rest bind 0.0.0.0.
var loopbackOnly = map[string]bool{
	"etcd-peer": true, "containerd-metrics": true, "containerd-stream": true,
	"kubelet-healthz": true, "kube-proxy-metrics": true, "kube-proxy-healthz": true, "auth-webhook": true,
}

// removedPorts must never listen.
var removedPorts = []int{10251, 10252}

type node struct {
	t   *testing.T
	dir string
	// offset is added to every default port; nodes in a network namespace
	// of their own run on the real default ports.
	offset int
	cmd    *exec.Cmd
	log    string
	waited chan error
	// env is added to every command's environment (e.g. start options).
	extraEnv []string
	// netns, if set, is the network namespace every kubeseed command,
	// client and dial of this node runs in (see newNode); ip is the node's
	// address there, and hostIP the host's end of its link.
	netns, ip, hostIP string
	cache             string
	// worker marks a node that joined a cluster as a worker.
	worker bool
}

// freeOffset picks a random port offset at which every default port is free
// and outside the kernel's ephemeral range: a listener in that range can find
// its port taken by some outgoing connection.
func freeOffset(t *testing.T) int {
	t.Helper()
	lo, hi, err := hostinfo.EphemeralRange()
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		off := 1000 + rand.IntN(600)*50
		ok := true
		for _, p := range defaultPorts {
			if p+off >= lo && p+off <= hi || p+off > 65535 || !portFree(p+off) {
				ok = false
				break
			}
		}
		if ok {
			return off
		}
	}
	t.Fatal("no free port offset found")
	return 0
}

func portFree(p int) bool {
	ln, err := net.Listen("tcp", "0.0.0.0:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// newHostNode is a node in the test's own network namespace: the host's.
// Only the test of how nodes on one host live together uses it; every
// other node is in a namespace of its own (newNode).
func newHostNode(t *testing.T, offset int) *node {
	// A short path of our own rather than t.TempDir(): unix socket paths
	// under the data dir must stay within the kernel's 108 bytes.
	dir, err := os.MkdirTemp("", "ks-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return &node{t: t, dir: filepath.Join(dir, "data"), offset: offset, log: filepath.Join(dir, "kubeseed.log")}
}

// netnsSeq numbers the network namespaces of one test run.
var netnsSeq atomic.Int32

// newNode is a node in a network namespace of its own, so nothing it
// listens on, and no bridge or iptables rule it makes, can meet another
// node's, a node the user runs on the host included. It is reached from
// the host over a veth pair: host side veth-ks<i> with 198.18.<i>.1/24,
// node side eth0 with 198.18.<i>.2/24 and its default route (198.18.0.0/15
// is reserved for benchmarking, so nothing real uses it; a veth name keeps
// the host's own node from adding it to its certificates). It runs on the
// real default ports.
func newNode(t *testing.T) *node {
	t.Helper()
	i := int(netnsSeq.Add(1))%250 + 1
	return newNodeIn(t, i, fmt.Sprintf("198.18.%d.2", i), fmt.Sprintf("198.18.%d.1", i), true)
}

// newCopyNode is a node in a namespace of its own with base's address, for
// a copy of base's data dir: its certificates then name the right IP, and
// a start changes nothing. The host reaches only base at that address.
func newCopyNode(t *testing.T, base *node) *node {
	t.Helper()
	return newNodeIn(t, int(netnsSeq.Add(1))%250+1, base.ip, base.hostIP, false)
}

func newNodeIn(t *testing.T, i int, ip, gateway string, hostSide bool) *node {
	t.Helper()
	ns, hostIf := fmt.Sprintf("ks-e2e-%d", i), fmt.Sprintf("veth-ks%d", i)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run() // a leftover of a killed run
	run("ip", "netns", "add", ns)
	// Registered before the node, so it runs after the node's own cleanup;
	// deleting the namespace deletes the veth pair too.
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	in := func(args ...string) { run(append([]string{"ip", "netns", "exec", ns}, args...)...) }
	n := newHostNode(t, 0)
	n.netns, n.ip, n.hostIP = ns, ip, gateway
	run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns)
	if hostSide {
		run("ip", "addr", "add", gateway+"/24", "dev", hostIf)
	}
	run("ip", "link", "set", hostIf, "up")
	in("ip", "link", "set", "lo", "up")
	in("ip", "addr", "add", ip+"/24", "dev", "eth0")
	in("ip", "link", "set", "eth0", "up")
	in("ip", "route", "add", "default", "via", gateway)
	return n
}

// inNamespace runs f on an OS thread that has entered the node's network
// namespace, so the sockets f makes live there. The thread is never
// returned to the Go scheduler: it ends with the goroutine.
func (n *node) inNamespace(f func() error) error {
	if n.netns == "" {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // and never unlocked: the thread is dropped
		fd, err := unix.Open("/run/netns/"+n.netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", n.netns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", n.netns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// dialContext dials from inside the node's network namespace: 127.0.0.1
// is the node's loopback.
func (n *node) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := n.inNamespace(func() error {
		var err error
		conn, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

func (n *node) dialTimeout(network, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return n.dialContext(ctx, network, addr)
}

// tlsDial is tls.DialWithDialer from inside the node's namespace.
func (n *node) tlsDial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	raw, err := n.dialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	conn := tls.Client(raw, cfg)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := conn.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// listen opens a listener inside the node's namespace.
func (n *node) listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.inNamespace(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// httpClient is an HTTP client whose connections start in the node's
// network namespace.
func (n *node) httpClient(cfg *tls.Config, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: cfg, DialContext: n.dialContext}}
}

// defaultIP is the node's default-route address: its eth0 in its namespace.
func (n *node) defaultIP() string {
	n.t.Helper()
	if n.ip != "" {
		return n.ip
	}
	return defaultIP(n.t)
}

func (n *node) port(name string) int { return defaultPorts[name] + n.offset }

func (n *node) env() []string {
	return append(append(os.Environ(), "KUBESEED_DATA_DIR="+n.dir, "KUBESEED_PORT_OFFSET="+strconv.Itoa(n.offset)), n.extraEnv...)
}

// start launches `kubeseed start` and waits with `status --wait-ready`.
func (n *node) start() {
	n.t.Helper()
	n.startNoWait()
	out, err := n.kubeseed("status", "--wait-ready", "--timeout", "3m")
	if err != nil {
		n.dumpLog()
		n.t.Fatalf("node not ready: %v\n%s", err, out)
	}
}

func (n *node) startNoWait() {
	n.t.Helper()
	n.run("start")
}

// run launches a command that runs the node in the foreground (start, or
// join), with its output in the node's log.
func (n *node) run(args ...string) {
	n.t.Helper()
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	cmd := n.command(args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	logf.Close()
	if n.cmd == nil && n.waited == nil {
		n.t.Cleanup(n.kill)
	}
	n.cmd = cmd
	n.waited = make(chan error, 1)
	go func() { n.waited <- cmd.Wait() }()
}

// kill ends the node however it is, for cleanup, then resets it so no
// cgroup, iptables rule, interface or mount outlives the test.
func (n *node) kill() {
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.waited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
			<-n.waited
		}
		if n.t.Failed() {
			n.dumpLog()
		}
		n.cmd = nil
	}
	// The kubelet's CSI node info lives in an upstream package variable the
	// controller-manager's volume controllers also set (see
	// controlplane.ControllerManager.Ready). Losing that race leaves the
	// manager without a node name, which shows in its errors; other
	// CSINode errors are retried by upstream and only logged here.
	if data, err := os.ReadFile(n.log); err == nil && strings.Contains(string(data), "CSINode") {
		var lines []string
		raced := false
		for _, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, "Failed to initialize CSINode") {
				lines = append(lines, l)
				raced = raced || strings.Contains(l, "name may not be empty") || strings.Contains(l, `""`)
			}
		}
		if raced {
			n.t.Errorf("the kubelet lost its CSINode to the controller-manager:\n%s", strings.Join(lines, "\n"))
		} else if len(lines) > 0 {
			n.t.Logf("the kubelet retried its CSINode initialisation:\n%s", strings.Join(lines, "\n"))
		}
	}
	if _, err := os.Stat(n.dir); err == nil {
		if out, err := n.kubeseed("reset", "--yes"); err != nil {
			n.t.Errorf("cleanup: kubeseed reset: %v\n%s", err, out)
		}
	}
}

// stop runs `kubeseed stop` and checks the process is gone.
func (n *node) stop() {
	n.t.Helper()
	out, err := n.kubeseed("stop")
	if err != nil {
		n.t.Fatalf("kubeseed stop: %v\n%s", err, out)
	}
	select {
	case <-n.waited:
	case <-time.After(10 * time.Second):
		n.t.Fatal("kubeseed stop returned but the process still runs")
	}
	n.cmd = nil
}

// waitExit waits for a start that is expected to fail and returns its log.
func (n *node) waitExit(timeout time.Duration) (log string, exitErr error) {
	n.t.Helper()
	select {
	case err := <-n.waited:
		n.cmd = nil
		data, _ := os.ReadFile(n.log)
		return string(data), err
	case <-time.After(timeout):
		n.t.Fatalf("kubeseed start did not exit within %s", timeout)
		return "", nil
	}
}

// command is a kubeseed command for this node, in its network namespace if
// it has one. nsenter switches only the network namespace: `ip netns exec`
// would also remount /sys and hide the cgroup hierarchies from the kubelet.
func (n *node) command(args ...string) *exec.Cmd {
	cmd := n.inNetns(kubeseedBin, args...)
	cmd.Env = n.env()
	return cmd
}

// inNetns runs a program in the node's network namespace, if it has one.
func (n *node) inNetns(name string, args ...string) *exec.Cmd {
	if n.netns == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + n.netns, name}, args...)...)
}

func (n *node) kubeseed(args ...string) (string, error) {
	out, err := n.command(args...).CombinedOutput()
	return string(out), err
}

func (n *node) mustKubeseed(args ...string) string {
	n.t.Helper()
	out, err := n.kubeseed(args...)
	if err != nil {
		n.t.Fatalf("kubeseed %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// stockKubectl is an outside client: the machine's /usr/bin/kubectl, or the
// upstream kubectl that hack/deps.sh builds where there is none.
var stockKubectl = func() string {
	if _, err := os.Stat("/usr/bin/kubectl"); err == nil {
		return "/usr/bin/kubectl"
	}
	return "/usr/local/bin/kubectl"
}()

// kubectl runs the stock kubectl as admin.
func (n *node) kubectl(args ...string) (string, error) {
	full := append([]string{"--kubeconfig", filepath.Join(n.dir, "credentials", "client.config"),
		"--cache-dir", n.kubectlCache()}, args...)
	out, err := n.inNetns(stockKubectl, full...).CombinedOutput()
	return string(out), err
}

// kubectlCache is kubectl's cache dir, beside the data dir of a node the
// test made and in a temp dir for the user's node.
func (n *node) kubectlCache() string {
	if n.cache == "" {
		n.cache = filepath.Join(n.dir, "..", "kubectl-cache")
	}
	return n.cache
}

func (n *node) dumpLog() {
	data, err := os.ReadFile(n.log)
	if err != nil {
		return
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) > 80 {
		lines = lines[len(lines)-80:]
	}
	n.t.Logf("last lines of %s:\n%s", n.log, strings.Join(lines, "\n"))
}

// logCount counts the node log's lines that hold s.
func (n *node) logCount(s string) int {
	data, err := os.ReadFile(n.log)
	if err != nil {
		n.t.Fatal(err)
	}
	return strings.Count(string(data), s)
}

// waitLog waits until the node log has at least count lines holding s.
func (n *node) waitLog(s string, count int, timeout time.Duration) {
	n.t.Helper()
	for deadline := time.Now().Add(timeout); n.logCount(s) < count; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			n.dumpLog()
			n.t.Fatalf("the node log has %d lines with %q after %s, want %d", n.logCount(s), s, timeout, count)
		}
	}
}

func (n *node) path(parts ...string) string {
	return filepath.Join(append([]string{n.dir}, parts...)...)
}

// tlsConfig trusts the named CA and presents the named client certificate.
func (n *node) tlsConfig(ca, client string) *tls.Config {
	n.t.Helper()
	pem, err := os.ReadFile(n.path("certs", ca+".crt"))
	if err != nil {
		n.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool}
	if client != "" {
		c, err := tls.LoadX509KeyPair(n.path("certs", client+".crt"), n.path("certs", client+".key"))
		if err != nil {
			n.t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

// listeners returns "ip:port" of every TCP socket the process and its
// descendants listen on, read from /proc so the audit sees what the kernel
// sees, in the process's own network namespace.
func listeners(t *testing.T, pid int) map[string]bool {
	t.Helper()
	inodes := socketInodes(pid)
	out := map[string]bool{}
	for _, file := range []string{fmt.Sprintf("/proc/%d/net/tcp", pid), fmt.Sprintf("/proc/%d/net/tcp6", pid)} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] { // 0A = LISTEN
				continue
			}
			out[decodeAddr(fields[1])] = true
		}
		f.Close()
	}
	return out
}

// socketInodes are the inodes of the sockets pid and its descendants hold.
func socketInodes(pid int) map[string]bool {
	inodes := map[string]bool{}
	for _, p := range procfs.Descendants(pid) {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		for _, fd := range fds {
			target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p, fd.Name()))
			if err == nil && strings.HasPrefix(target, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
			}
		}
	}
	return inodes
}

func decodeAddr(s string) string {
	hostHex, portHex, _ := strings.Cut(s, ":")
	b, _ := hex.DecodeString(hostHex)
	// /proc/net/tcp stores each 32-bit word in host (little-endian) order.
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	port, _ := strconv.ParseUint(portHex, 16, 16)
	return net.JoinHostPort(net.IP(b).String(), strconv.Itoa(int(port)))
}

// auditPorts checks that the node listens on exactly the table's ports,
// each on its declared interface, and never on a removed port. off names
// optional services the node's args files turned off.
func (n *node) auditPorts(off ...string) {
	n.t.Helper()
	got := listeners(n.t, n.cmd.Process.Pid)
	want := map[string]bool{}
	for name, p := range defaultPorts {
		if slices.Contains(off, name) || n.worker && !workerPorts[name] {
			continue
		}
		host := "0.0.0.0"
		if loopbackOnly[name] {
			host = "127.0.0.1"
		}
		want[net.JoinHostPort(host, strconv.Itoa(p+n.offset))] = true
	}
	if n.worker {
		want[net.JoinHostPort("127.0.0.1", strconv.Itoa(defaultPorts["kube-apiserver"]+n.offset))] = true
	}
	// Go listens on 0.0.0.0 with a dual-stack socket, which /proc shows as [::].
	for addr := range got {
		if host, port, _ := net.SplitHostPort(addr); host == "::" {
			delete(got, addr)
			got[net.JoinHostPort("0.0.0.0", port)] = true
		}
	}
	for addr := range want {
		if !got[addr] {
			n.t.Errorf("port audit: expected a listener on %s; listening: %v", addr, keys(got))
		}
	}
	for addr := range got {
		if !want[addr] {
			n.t.Errorf("port audit: unexpected listener %s (not in the services table)", addr)
		}
	}
	n.auditUDP()
	for _, p := range removedPorts {
		for _, port := range []int{p, p + n.offset} {
			if conn, err := n.dialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
				conn.Close()
				n.t.Errorf("something listens on removed port %d", port)
			}
		}
	}
}

// auditUDP checks the node's UDP side: the kernel's VXLAN socket on 4789
// (no process holds it) and no UDP socket of kubeseed's bound and waiting
// for anyone.
func (n *node) auditUDP() {
	n.t.Helper()
	owned := socketInodes(n.cmd.Process.Pid)
	vxlan := false
	var unexpected []string
	for _, file := range []string{"udp", "udp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", n.cmd.Process.Pid, file))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			local := decodeAddr(f[1])
			_, port, _ := net.SplitHostPort(local)
			switch {
			case port == strconv.Itoa(vxlanPort) && !owned[f[9]]:
				vxlan = true
			case owned[f[9]] && strings.HasSuffix(f[2], ":0000"): // not connected: a server socket
				unexpected = append(unexpected, local)
			}
		}
	}
	if !vxlan {
		n.t.Errorf("port audit: no kernel VXLAN socket on UDP %d", vxlanPort)
	}
	if len(unexpected) > 0 {
		n.t.Errorf("port audit: unexpected UDP sockets %v (not in the services table)", unexpected)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func defaultIP(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-4", "route", "show", "default").CombinedOutput()
	f := strings.Fields(string(out))
	dev := ""
	for i := range f {
		if f[i] == "dev" && i+1 < len(f) {
			dev = f[i+1]
		}
	}
	if err != nil || dev == "" {
		t.Fatalf("no default route: %v %s", err, out)
	}
	out, err = exec.Command("ip", "-4", "-o", "addr", "show", "dev", dev).CombinedOutput()
	f = strings.Fields(string(out))
	for i := range f {
		if f[i] == "inet" && i+1 < len(f) {
			return strings.Split(f[i+1], "/")[0]
		}
	}
	t.Fatalf("no IPv4 address on %s: %v %s", dev, err, out)
	return ""
}
