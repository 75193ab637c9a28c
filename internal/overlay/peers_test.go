package overlay

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, addrs ...corev1.NodeAddress) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: addrs}}
}

func internal(ip string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
}

func TestNodeInternalIPv4s(t *testing.T) {
	cases := []struct {
		name  string
		nodes []*corev1.Node
		want  []string
	}{
		{name: "none", nodes: nil, want: nil},
		{name: "node without addresses yet", nodes: []*corev1.Node{node("a")}, want: nil},
		{name: "sorted across nodes", nodes: []*corev1.Node{
			node("b", internal("192.168.1.12")),
			node("a", internal("192.168.1.10")),
		}, want: []string{"192.168.1.10", "192.168.1.12"}},
		{name: "only InternalIP, only IPv4", nodes: []*corev1.Node{node("a",
			corev1.NodeAddress{Type: corev1.NodeHostName, Address: "a"},
			corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.7"},
			internal("fd00::10"),
			internal("192.168.1.10"),
		)}, want: []string{"192.168.1.10"}},
		{name: "several InternalIPs, duplicates, garbage", nodes: []*corev1.Node{
			node("a", internal("192.168.1.10"), internal("10.0.0.10"), internal("not-an-ip")),
			node("b", internal("::ffff:192.168.1.10")),
		}, want: []string{"10.0.0.10", "192.168.1.10"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := nodeInternalIPv4s(tc.nodes); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIPSetDiff(t *testing.T) {
	cases := []struct {
		name             string
		want, have       []string
		wantAdd, wantDel []string
	}{
		{name: "equal", want: []string{"10.0.0.1", "10.0.0.2"}, have: []string{"10.0.0.2", "10.0.0.1"}},
		{name: "empty set, first sync", want: []string{"10.0.0.2", "10.0.0.1"}, wantAdd: []string{"10.0.0.1", "10.0.0.2"}},
		{name: "no nodes: empty the set (fail closed)", have: []string{"10.0.0.1"}, wantDel: []string{"10.0.0.1"}},
		{name: "node replaced", want: []string{"10.0.0.1", "10.0.0.3"}, have: []string{"10.0.0.1", "10.0.0.2"},
			wantAdd: []string{"10.0.0.3"}, wantDel: []string{"10.0.0.2"}},
		{name: "textual forms compare canonically", want: []string{"::ffff:10.0.0.1"}, have: []string{"10.0.0.1"}},
		{name: "duplicates collapse", want: []string{"10.0.0.1", "10.0.0.1"}, wantAdd: []string{"10.0.0.1"}},
		{name: "non-IPv4 ignored both ways", want: []string{"fd00::1", "x"}, have: []string{"fd00::2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			add, del := ipsetDiff(tc.want, tc.have)
			if !slices.Equal(add, tc.wantAdd) || !slices.Equal(del, tc.wantDel) {
				t.Errorf("add %v del %v, want add %v del %v", add, del, tc.wantAdd, tc.wantDel)
			}
		})
	}
}
