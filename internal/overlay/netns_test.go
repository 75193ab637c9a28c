package overlay

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// netnsEnv marks the re-executed test binary running in its own network
// namespace.
const netnsEnv = "KUBESEED_OVERLAY_TEST_IN_NETNS"

const (
	testIface   = "ks-ovl-eth0"
	testNodeIP  = "192.168.77.10"
	testPeerIP  = "192.168.77.11"
	testPeerMAC = "0a:58:0a:01:01:01"
)

// TestInNetns runs the parts that need the kernel (netlink, ipset,
// iptables, a real flannel Run against a fake API server) in a network
// namespace of its own: the test re-executes itself under `unshare --net`,
// so nothing on the host is touched and the namespace ends with the process.
func TestInNetns(t *testing.T) {
	if os.Getenv(netnsEnv) == "" {
		if testing.Short() {
			t.Skip("-short: skipping the network namespace test")
		}
		if os.Geteuid() != 0 {
			t.Skip("needs root for a private network namespace")
		}
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Skip("needs unshare(1)")
		}
		cmd := exec.Command(unshare, "--net", "--", os.Args[0], "-test.run=^TestInNetns$", "-test.v", "-test.count=1")
		// The child's proof that it is elsewhere: the parent's namespace.
		cmd.Env = append(os.Environ(), netnsEnv+"="+strconv.FormatUint(netnsInode(t), 10))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in netns: %v\n%s", err, out)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() { // the verdicts; flannel's klog lines only on failure
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "ok") {
				t.Log(l)
			}
		}
		return
	}
	mustBePrivateNetns(t)
	setupNetns(t)
	t.Run("forbidden", testForbidden)
	t.Run("filter", testFilter)
	t.Run("run", testRun)
	t.Run("cleanup", testCleanUp)
}

func netnsInode(t *testing.T) uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// mustBePrivateNetns stops the test if it is somehow still in the
// namespace of the process that started it.
func mustBePrivateNetns(t *testing.T) {
	parent, err := strconv.ParseUint(os.Getenv(netnsEnv), 10, 64)
	if err != nil || parent == netnsInode(t) {
		t.Fatalf("refusing to run: not in a namespace of its own (%s=%q)", netnsEnv, os.Getenv(netnsEnv))
	}
}

func setupNetns(t *testing.T) {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	// veth, not dummy: this kernel has no dummy driver. The peer end
	// must be up for the node end to be.
	d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: testIface, MTU: 1500}, PeerName: testIface + "p"}
	if err := netlink.LinkAdd(d); err != nil {
		t.Fatal(err)
	}
	peer, err := netlink.LinkByName(testIface + "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr(testNodeIP + "/24")
	if err := netlink.AddrAdd(d, addr); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(d); err != nil {
		t.Fatal(err)
	}
}

func testIPT(t *testing.T) *iptables.IPTables {
	t.Helper()
	ipt, err := iptables.New(iptables.Timeout(iptablesWait))
	if err != nil {
		t.Skipf("iptables: %v", err)
	}
	return ipt
}

func countOwnRules(t *testing.T, ipt *iptables.IPTables) int {
	t.Helper()
	lines, err := ipt.List("filter", "INPUT")
	if err != nil {
		t.Fatal(err)
	}
	return len(ownInputRules(lines))
}

func testFilter(t *testing.T) {
	ipt := testIPT(t)
	f, err := newFilter(4789)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := f.ensure(); err != nil {
			t.Fatal(err)
		}
	}
	if n := countOwnRules(t, ipt); n != 1 {
		t.Fatalf("%d INPUT filter rules, want 1", n)
	}
	if lines, _ := ipt.List("filter", "INPUT"); !strings.Contains(lines[1], "--dport 4789") {
		t.Errorf("filter rule is not first: %q", lines)
	}
	steps := []struct {
		want, wantAdd, wantDel []string
	}{
		{want: []string{"192.168.77.12", "192.168.77.11"}, wantAdd: []string{"192.168.77.11", "192.168.77.12"}},
		{want: []string{"192.168.77.12", "192.168.77.11"}},
		{want: []string{"192.168.77.12", "192.168.77.13"}, wantAdd: []string{"192.168.77.13"}, wantDel: []string{"192.168.77.11"}},
		{want: nil, wantDel: []string{"192.168.77.12", "192.168.77.13"}},
	}
	for i, s := range steps {
		add, del, err := f.sync(s.want)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if !slices.Equal(add, s.wantAdd) || !slices.Equal(del, s.wantDel) {
			t.Errorf("step %d: add %v del %v, want %v %v", i, add, del, s.wantAdd, s.wantDel)
		}
		have, err := ipsetEntries()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(have)
		if want := canonicalSorted(s.want); !slices.Equal(have, want) {
			t.Errorf("step %d: set holds %v, want %v", i, have, want)
		}
	}
	// The set survives a second filter (a restart) with its entries.
	if _, _, err := f.sync([]string{testPeerIP}); err != nil {
		t.Fatal(err)
	}
	if err := f.ensure(); err != nil {
		t.Fatal(err)
	}
	if have, _ := ipsetEntries(); !slices.Equal(have, []string{testPeerIP}) {
		t.Errorf("after ensure the set holds %v", have)
	}
}

func canonicalSorted(ips []string) []string {
	out := []string{}
	for ip := range canonicalSet(ips) {
		out = append(out, ip)
	}
	slices.Sort(out)
	return out
}

func testRun(t *testing.T) {
	mac, _ := net.ParseMAC(testPeerMAC)
	nodeA := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a", Annotations: map[string]string{}},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{internal(testNodeIP)}},
	}
	nodeB := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-b", Annotations: map[string]string{
			annotationPrefix + "/kube-subnet-manager": "true",
			annotationPrefix + "/backend-type":        "vxlan",
			annotationPrefix + "/public-ip":           testPeerIP,
			annotationPrefix + "/backend-data":        `{"VNI":1,"VtepMAC":"` + testPeerMAC + `"}`,
		}},
		Spec:   corev1.NodeSpec{PodCIDR: "10.1.1.0/24", PodCIDRs: []string{"10.1.1.0/24"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{internal(testPeerIP)}},
	}
	api := newFakeAPI(nodeA, nodeB)
	srv := httptest.NewServer(api)
	defer srv.Close()
	cfg := Config{
		Kubeconfig: writeKubeconfig(t, srv.URL), NodeName: "node-a", NodeIP: net.ParseIP(testNodeIP),
		ClusterCIDR: "10.1.0.0/16", Port: 4789, VNI: 1,
	}

	start := func() (*Overlay, context.CancelFunc, chan error) {
		o, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx) }()
		return o, cancel, done
	}
	stop := func(cancel context.CancelFunc, done chan error) {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run after cancel: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}

	o, cancel, done := start()
	// No podCIDR yet: Ready must wait, not fail.
	short, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
	err := o.Ready(short)
	cancelShort()
	wantErrLike(t, err, "waiting for Node node-a spec.podCIDR")
	api.update("node-a", func(n *corev1.Node) { n.Spec.PodCIDR, n.Spec.PodCIDRs = "10.1.0.0/24", []string{"10.1.0.0/24"} })

	readyCtx, cancelReady := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancelReady()
	if err := o.Ready(readyCtx); err != nil {
		t.Fatal(err)
	}

	link, err := netlink.LinkByName("flannel.1")
	if err != nil {
		t.Fatal(err)
	}
	vx := link.(*netlink.Vxlan)
	if vx.Port != 4789 || vx.VxlanId != 1 || vx.MTU != MTU(1500) || vx.Learning || !vx.SrcAddr.Equal(net.ParseIP(testNodeIP)) {
		t.Errorf("device: port %d vni %d mtu %d learning %v src %v", vx.Port, vx.VxlanId, vx.MTU, vx.Learning, vx.SrcAddr)
	}
	addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.1.0.0/32" {
		t.Errorf("device addresses %v, want 10.1.0.0/32", addrs)
	}
	myMAC := vx.HardwareAddr.String()
	if a := api.node("node-a").Annotations; a[annotationPrefix+"/public-ip"] != testNodeIP {
		t.Errorf("node-a annotations %v", a)
	}
	if !slices.Contains(api.patches, "node-a status") {
		t.Errorf("flannel patched %v, want node-a's status subresource", api.patches)
	}

	// Peer node-b: route, ARP, FDB, and its address in the set.
	eventually(t, "peer route, neighbours and set entry", func() string {
		return peerState(link.Attrs().Index, mac, true)
	})
	if set, _ := ipsetEntries(); !slices.Contains(set, testNodeIP) {
		t.Errorf("set %v lacks this node's own InternalIP", set)
	}
	// A node that leaves is unwired and no longer admitted.
	api.remove("node-b")
	eventually(t, "peer gone", func() string { return peerState(link.Attrs().Index, mac, false) })
	stop(cancel, done)

	// A restart keeps the device's MAC (flannel reads it back from the
	// annotation), so peers' FDB entries stay right.
	o2, cancel2, done2 := start()
	if err := o2.Ready(readyCtx); err != nil {
		t.Fatal(err)
	}
	link2, _ := netlink.LinkByName("flannel.1")
	if got := link2.Attrs().HardwareAddr.String(); got != myMAC {
		t.Errorf("MAC after restart %s, want %s", got, myMAC)
	}
	if lines, _ := testIPT(t).List("nat", "FLANNEL-POSTRTG"); !slices.ContainsFunc(lines, func(l string) bool {
		return strings.Contains(l, "-s 10.1.0.0/16") && strings.Contains(l, "MASQUERADE")
	}) {
		t.Errorf("FLANNEL-POSTRTG: %q", lines)
	}
	stop(cancel2, done2)
	if _, err := netlink.LinkByName("flannel.1"); err != nil {
		t.Errorf("device gone after Run returned: %v (it should stay until CleanUp)", err)
	}
}

// peerState is "" when node-b is (present) or is not (!present) wired up.
func peerState(idx int, mac net.HardwareAddr, present bool) string {
	_, dst, _ := net.ParseCIDR("10.1.1.0/24")
	routes, _ := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: idx}, netlink.RT_FILTER_OIF)
	route := slices.ContainsFunc(routes, func(r netlink.Route) bool {
		return r.Dst != nil && r.Dst.String() == dst.String() && r.Gw.Equal(net.ParseIP("10.1.1.0"))
	})
	neighs, _ := netlink.NeighList(idx, netlink.FAMILY_V4)
	arp := slices.ContainsFunc(neighs, func(n netlink.Neigh) bool {
		return n.IP.Equal(net.ParseIP("10.1.1.0")) && n.HardwareAddr.String() == mac.String()
	})
	fdbs, _ := netlink.NeighList(idx, unix.AF_BRIDGE)
	fdb := slices.ContainsFunc(fdbs, func(n netlink.Neigh) bool {
		return n.IP.Equal(net.ParseIP(testPeerIP)) && n.HardwareAddr.String() == mac.String()
	})
	set, _ := ipsetEntries()
	inSet := slices.Contains(set, testPeerIP)
	// flannel leaves the FDB entry of a removed node; only check it when adding.
	if present && !(route && arp && fdb && inSet) || !present && (route || arp || inSet) {
		return strings.Join([]string{
			"route=" + boolStr(route), "arp=" + boolStr(arp), "fdb=" + boolStr(fdb), "set=" + strings.Join(set, ","),
		}, " ")
	}
	return ""
}

func boolStr(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func eventually(t *testing.T, what string, f func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if last = f(); last == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: still %s", what, last)
}

// testForbidden: an identity that may not list Nodes fails Run at once,
// naming the fix, before the host is touched.
func testForbidden(t *testing.T) {
	api := newFakeAPI()
	api.forbidAll = true
	srv := httptest.NewServer(api)
	defer srv.Close()
	o, err := New(Config{Kubeconfig: writeKubeconfig(t, srv.URL), NodeName: "node-a", NodeIP: net.ParseIP(testNodeIP),
		ClusterCIDR: "10.1.0.0/16", Port: 4789, VNI: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wantErrLike(t, o.Run(ctx), "system:node:node-a may not: bind a ClusterRole with get/list/watch on nodes")
	if n := countOwnRules(t, testIPT(t)); n != 0 {
		t.Errorf("%d INPUT rules after a refused start", n)
	}
}

func testCleanUp(t *testing.T) {
	ipt := testIPT(t)
	// Leftovers of a run with another port and VNI, as reset may find them.
	f, err := newFilter(8472)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ensure(); err != nil {
		t.Fatal(err)
	}
	extra := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "flannel.7"}, VxlanId: 7, Port: 8472}
	if err := netlink.LinkAdd(extra); err != nil {
		t.Fatal(err)
	}
	keep := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan-keep"}, VxlanId: 9, Port: 4790}
	if err := netlink.LinkAdd(keep); err != nil {
		t.Fatal(err)
	}

	for i := range 2 { // the second finds nothing and is no error
		if err := CleanUp(); err != nil {
			t.Fatalf("CleanUp #%d: %v", i+1, err)
		}
	}
	for _, name := range []string{"flannel.1", "flannel.7"} {
		if _, err := netlink.LinkByName(name); err == nil {
			t.Errorf("%s still exists", name)
		}
	}
	if _, err := netlink.LinkByName("vxlan-keep"); err != nil {
		t.Errorf("CleanUp removed a VXLAN device that is not flannel's: %v", err)
	}
	for _, c := range [][2]string{{"nat", "FLANNEL-POSTRTG"}, {"filter", "FLANNEL-FWD"}} {
		if ok, err := ipt.ChainExists(c[0], c[1]); err != nil || ok {
			t.Errorf("chain %s/%s: exists %v, %v", c[0], c[1], ok, err)
		}
	}
	for _, c := range [][2]string{{"nat", "POSTROUTING"}, {"filter", "FORWARD"}} {
		lines, _ := ipt.List(c[0], c[1])
		if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "FLANNEL") }) {
			t.Errorf("%s/%s still jumps to flannel: %q", c[0], c[1], lines)
		}
	}
	if n := countOwnRules(t, ipt); n != 0 {
		t.Errorf("%d INPUT filter rules left", n)
	}
	if _, err := ipsetEntries(); err == nil {
		t.Errorf("ipset %s still exists", IPSetName)
	}
}
