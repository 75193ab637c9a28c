package dns

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubeseed/kubeseed/internal/netconf"
)

// renderTyped renders the default manifest and converts the object of the
// given kind into out, failing if it is not there exactly once.
func renderTyped(t *testing.T, kind string, out any) {
	t.Helper()
	objs, err := Render(ParamsFor(netconf.Default(), []string{"192.0.2.53"}))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, o := range objs {
		if o.GetKind() != kind {
			continue
		}
		found++
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, out, true); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}
	if found != 1 {
		t.Fatalf("%d objects of kind %s, want 1", found, kind)
	}
}

// TestClusterRoleIsExact pins what the README promises: list and watch on
// services, namespaces and discovery.k8s.io endpointslices, nothing more.
func TestClusterRoleIsExact(t *testing.T) {
	var cr rbacv1.ClusterRole
	renderTyped(t, "ClusterRole", &cr)
	if cr.Name != "system:coredns" || cr.AggregationRule != nil {
		t.Errorf("ClusterRole %q, aggregation %v", cr.Name, cr.AggregationRule)
	}
	var got []string
	for _, r := range cr.Rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("rule %+v has resourceNames or nonResourceURLs", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					got = append(got, g+"/"+res+":"+v)
				}
			}
		}
	}
	slices.Sort(got)
	want := []string{
		"/namespaces:list", "/namespaces:watch",
		"/services:list", "/services:watch",
		"discovery.k8s.io/endpointslices:list", "discovery.k8s.io/endpointslices:watch",
	}
	if !slices.Equal(got, want) {
		t.Errorf("ClusterRole grants %v, want exactly %v", got, want)
	}

	var crb rbacv1.ClusterRoleBinding
	renderTyped(t, "ClusterRoleBinding", &crb)
	wantSubj := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "coredns", Namespace: "kube-system"}}
	if crb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:coredns"}) || !slices.Equal(crb.Subjects, wantSubj) {
		t.Errorf("ClusterRoleBinding binds %+v to %+v", crb.RoleRef, crb.Subjects)
	}
}

// TestDeploymentLeastPrivilege pins the pod's security settings the README
// lists under "Least privilege".
func TestDeploymentLeastPrivilege(t *testing.T) {
	var d appsv1.Deployment
	renderTyped(t, "Deployment", &d)
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "coredns" {
		t.Errorf("serviceAccountName %q", pod.ServiceAccountName)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("pod shares a host namespace")
	}
	psc := pod.SecurityContext
	if psc == nil {
		t.Fatal("no pod securityContext")
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("runAsNonRoot is not true")
	}
	if psc.RunAsUser == nil || *psc.RunAsUser != 65532 || psc.RunAsGroup == nil || *psc.RunAsGroup != 65532 {
		t.Errorf("runAsUser/runAsGroup %v/%v, want 65532", psc.RunAsUser, psc.RunAsGroup)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccomp %+v, want RuntimeDefault", psc.SeccompProfile)
	}
	if len(pod.InitContainers) != 0 || len(pod.Containers) != 1 {
		t.Fatalf("%d init and %d containers, want 0 and 1", len(pod.InitContainers), len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("no container securityContext")
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 || sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
		t.Error("container overrides the pod's non-root user")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and no add", sc.Capabilities)
	}
	// Unprivileged ports only: no capability is needed to bind them.
	for _, p := range c.Ports {
		if p.ContainerPort < 1024 || p.HostPort != 0 {
			t.Errorf("port %+v is privileged or on the host", p)
		}
	}
	if c.Image != "kubeseed.local/coredns:v1.15.0" || c.ImagePullPolicy != corev1.PullNever {
		t.Errorf("image %q pull %q", c.Image, c.ImagePullPolicy)
	}
}

func TestServiceClusterIP(t *testing.T) {
	var s corev1.Service
	renderTyped(t, "Service", &s)
	if s.Name != "kube-dns" || s.Namespace != "kube-system" {
		t.Errorf("Service %s/%s", s.Namespace, s.Name)
	}
	if s.Spec.ClusterIP != "10.152.183.10" {
		t.Errorf("clusterIP %q, want 10.152.183.10", s.Spec.ClusterIP)
	}
	var got []string
	for _, p := range s.Spec.Ports {
		got = append(got, string(p.Protocol)+"/"+p.TargetPort.String())
		if p.Name != "metrics" && p.Port != 53 {
			t.Errorf("port %s is %d, want 53", p.Name, p.Port)
		}
	}
	if want := []string{"UDP/dns", "TCP/dns-tcp", "TCP/metrics"}; !slices.Equal(got, want) {
		t.Errorf("ports %v, want %v", got, want)
	}
}
