package controlplane

import "testing"

func TestControllersBuilt(t *testing.T) {
	for _, tt := range []struct {
		body string
		want bool
	}{
		{"[+]ping ok\n[+]leaderElection ok\nhealthz check passed\n", false},
		{"[+]ping ok\n[+]informer-sync ok\nhealthz check passed\n", false},
		{"[+]ping ok\n[+]serviceaccount-token-controller ok\n[+]namespace-controller ok\nhealthz check passed\n", true},
		{"[-]namespace-controller failed: reason withheld\n", false},
		{"", false},
	} {
		if got := controllersBuilt(tt.body); got != tt.want {
			t.Errorf("controllersBuilt(%q) = %v, want %v", tt.body, got, tt.want)
		}
	}
}
