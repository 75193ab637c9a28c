package authz

import (
	"context"
	"fmt"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/pki"
)

// fieldManager owns the objects kubeseed applies.
const fieldManager = "kubeseed"

// KubeletClientBinding lets kube-apiserver's kubelet-client identity use the
// kubelet API (logs, exec, port-forward) when kubelets authorize it through
// the apiserver under RBAC, as kubeadm does.
const KubeletClientBinding = "kubeseed:kube-apiserver-kubelet-client"

// OverlayRole lets every node read all Nodes: the overlay on each node
// follows the others' VXLAN addresses and filters its port by them. The
// Node authorizer lets a node read only its own Node object.
const OverlayRole = "kubeseed:overlay"

// EnsureClusterObjects applies the cluster RBAC objects kubeseed needs. It is
// idempotent (server-side apply), so every start runs it. They are applied
// under AlwaysAllow too, so `enable rbac` needs nothing more.
func EnsureClusterObjects(ctx context.Context, cs kubernetes.Interface) error {
	spec, ok := pki.Lookup("apiserver-kubelet-client")
	if !ok {
		return fmt.Errorf("pki.Table has no apiserver-kubelet-client")
	}
	const rbacGroup = "rbac.authorization.k8s.io"
	managed := map[string]string{"app.kubernetes.io/managed-by": "kubeseed"}
	bindings := []*rbacv1ac.ClusterRoleBindingApplyConfiguration{
		rbacv1ac.ClusterRoleBinding(KubeletClientBinding).WithLabels(managed).
			WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacGroup).WithKind("ClusterRole").WithName("system:kubelet-api-admin")).
			WithSubjects(rbacv1ac.Subject().WithAPIGroup(rbacGroup).WithKind("User").WithName(spec.CommonName)),
		rbacv1ac.ClusterRoleBinding(OverlayRole).WithLabels(managed).
			WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacGroup).WithKind("ClusterRole").WithName(OverlayRole)).
			WithSubjects(rbacv1ac.Subject().WithAPIGroup(rbacGroup).WithKind("Group").WithName("system:nodes")),
	}
	role := rbacv1ac.ClusterRole(OverlayRole).WithLabels(managed).
		WithRules(rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("nodes").WithVerbs("get", "list", "watch"))
	if _, err := cs.RbacV1().ClusterRoles().Apply(ctx, role, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return fmt.Errorf("apply clusterrole %s: %w", OverlayRole, err)
	}
	for _, crb := range bindings {
		if _, err := cs.RbacV1().ClusterRoleBindings().Apply(ctx, crb, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
			return fmt.Errorf("apply clusterrolebinding %s: %w", *crb.Name, err)
		}
	}
	return nil
}

// probeUser has no bindings; whether it may list secrets tells the modes
// apart.
const probeUser = "kubeseed:authorization-probe"

// Probe asks the running kube-apiserver which mode it enforces, with a
// SubjectAccessReview that goes through the same authorizer chain as every
// request.
func Probe(ctx context.Context, cs kubernetes.Interface) (Mode, error) {
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:   probeUser,
		Groups: []string{"system:authenticated"},
		ResourceAttributes: &authzv1.ResourceAttributes{
			Verb: "list", Resource: "secrets", Namespace: "kube-system",
		},
	}}
	res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("ask kube-apiserver for its authorization mode: %w", err)
	}
	if res.Status.Allowed {
		return AlwaysAllow, nil
	}
	return RBAC, nil
}

// WaitForMode polls Probe until kube-apiserver enforces want, telling
// progress what it waits for every few seconds.
func WaitForMode(ctx context.Context, cs kubernetes.Interface, want Mode, progress func(string)) error {
	start := time.Now()
	lastReport := start
	return health.Poll(ctx, 250*time.Millisecond, func(ctx context.Context) error {
		got, err := Probe(ctx, cs)
		if err == nil && got != want {
			err = fmt.Errorf("kube-apiserver still enforces %s", got)
		}
		if err != nil && time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			progress(fmt.Sprintf("waiting for kube-apiserver to reload its authorization config (%v, %s)", err, time.Since(start).Round(time.Second)))
		}
		return err
	})
}
