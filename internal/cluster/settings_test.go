package cluster

import "testing"

func TestReconcile(t *testing.T) {
	for _, tc := range []struct {
		name                        string
		local, synced, clusterValue string
		clusterSet                  bool
		want                        string
		publish                     bool
	}{
		{"first control plane of the cluster", "AlwaysAllow", "", "", false, "AlwaysAllow", true},
		{"joined with the cluster's value", "RBAC", "", "RBAC", true, "RBAC", false},
		{"another control plane switched", "AlwaysAllow", "AlwaysAllow", "RBAC", true, "RBAC", false},
		{"switched here while stopped", "RBAC", "AlwaysAllow", "AlwaysAllow", true, "RBAC", true},
		{"switched here and there alike", "RBAC", "AlwaysAllow", "RBAC", true, "RBAC", false},
		{"never synced, the cluster wins", "AlwaysAllow", "", "RBAC", true, "RBAC", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, publish := Reconcile(tc.local, tc.synced, tc.clusterValue, tc.clusterSet)
			if got != tc.want || publish != tc.publish {
				t.Errorf("Reconcile = %q, %v; want %q, %v", got, publish, tc.want, tc.publish)
			}
		})
	}
}
