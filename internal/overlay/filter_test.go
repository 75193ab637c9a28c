package overlay

import (
	"slices"
	"strings"
	"testing"
)

func TestFilterRule(t *testing.T) {
	got := strings.Join(filterRule(4789), " ")
	want := `-p udp --dport 4789 -m set ! --match-set kubeseed-nodes src -m comment --comment kubeseed: only cluster nodes may send VXLAN -j DROP`
	if got != want {
		t.Errorf("rule\n %s\nwant\n %s", got, want)
	}
}

func TestOwnInputRules(t *testing.T) {
	ours := `-A INPUT -p udp -m udp --dport 4789 -m set ! --match-set kubeseed-nodes src -m comment --comment "kubeseed: only cluster nodes may send VXLAN" -j DROP`
	cases := []struct {
		name  string
		lines []string
		want  []int
	}{
		{name: "empty chain", lines: []string{"-P INPUT ACCEPT"}},
		{name: "first", lines: []string{"-P INPUT ACCEPT", ours, "-A INPUT -j KUBE-FIREWALL"}, want: []int{1}},
		{name: "after others, twice, any port", lines: []string{
			"-P INPUT DROP",
			"-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS",
			ours,
			"-A INPUT -j KUBE-FIREWALL",
			strings.Replace(ours, "4789", "8472", 1),
		}, want: []int{2, 4}},
		{name: "another set's rule is not ours", lines: []string{
			"-P INPUT ACCEPT",
			"-A INPUT -m set --match-set kubeseed-nodes-old src -j ACCEPT",
			"-A INPUT -m comment --comment kubeseed-nodes -j ACCEPT",
			"-A INPUT -m set --match-set kubeseed-nodes dst -j ACCEPT",
		}, want: []int{3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ownInputRules(tc.lines); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFlannelDeviceNames(t *testing.T) {
	for name, want := range map[string]bool{
		"flannel.1": true, "flannel.4096": true, "flannel-v6.1": true,
		"flannel": false, "flannel.": false, "flannel.1x": false, "cni0": false, "xflannel.1": false,
	} {
		if got := flannelDevice.MatchString(name); got != want {
			t.Errorf("%q: %v, want %v", name, got, want)
		}
	}
}
