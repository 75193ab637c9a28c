package agent

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestLabelSelf(t *testing.T) {
	const key = "node-role.kubernetes.io/control-plane"
	tests := []struct {
		name     string
		existing []corev1.Node
		// registerAfter creates the Node while labelSelf is polling.
		registerAfter time.Duration
	}{
		{name: "node already registered", existing: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "cp-2", Labels: map[string]string{"a": "b"}}}}},
		{name: "node registers later", registerAfter: 30 * time.Millisecond},
		{name: "label already set", existing: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "cp-2", Labels: map[string]string{key: ""}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := fake.NewClientset()
			for i := range tc.existing {
				if _, err := kube.CoreV1().Nodes().Create(context.Background(), &tc.existing[i], metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.registerAfter > 0 {
				go func() {
					time.Sleep(tc.registerAfter)
					_, _ = kube.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp-2"}}, metav1.CreateOptions{})
				}()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := labelSelf(ctx, kube, "cp-2", 10*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			n, err := kube.CoreV1().Nodes().Get(ctx, "cp-2", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := n.Labels[key]; !ok {
				t.Fatalf("labels %v lack %s", n.Labels, key)
			}
			for k, v := range tc.existing {
				for lk, lv := range v.Labels {
					if n.Labels[lk] != lv {
						t.Errorf("existing node %d lost label %s=%s", k, lk, lv)
					}
				}
			}
		})
	}
}
