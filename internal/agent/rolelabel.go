package agent

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/jointoken"
)

// roleLabelPatch sets a node's node-role label; kubelets may not set it on
// themselves (NodeRestriction), so the agent does.
func roleLabelPatch(r jointoken.Role) []byte {
	return []byte(`{"metadata":{"labels":{"node-role.kubernetes.io/` + roleLabel(r) + `":""}}}`)
}

// labelSelf gives this control plane's Node its role label once the kubelet
// has registered it. It does not rely on the join's completion, which may
// arrive late, be refused, or never happen (the first node).
func labelSelf(ctx context.Context, kube kubernetes.Interface, name string, interval time.Duration) error {
	key := "node-role.kubernetes.io/" + roleLabel(jointoken.ControlPlane)
	return wait.PollUntilContextCancel(ctx, interval, true, func(ctx context.Context) (bool, error) {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if !apierrors.IsNotFound(err) {
				klog.FromContext(ctx).V(1).Info("Reading this node to label it", "node", name, "err", err)
			}
			return false, nil
		}
		if _, ok := n.Labels[key]; ok {
			return true, nil
		}
		_, err = kube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, roleLabelPatch(jointoken.ControlPlane), metav1.PatchOptions{})
		if err != nil {
			klog.FromContext(ctx).Info("Could not label this node a control plane; retrying", "node", name, "err", err)
		}
		return err == nil, nil
	})
}
