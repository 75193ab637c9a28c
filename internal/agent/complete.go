package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
)

// JoinCompleter tells the cluster agent, once this new worker is Ready,
// that its join worked: only then is the token's use consumed, so a join
// that fails on the way leaves the token usable.
type JoinCompleter struct {
	layout datadir.Layout
	state  cluster.State
	cancel context.CancelFunc
	done   chan struct{}
}

// NewJoinCompleter returns the component.
func NewJoinCompleter(l datadir.Layout) *JoinCompleter {
	return &JoinCompleter{layout: l, done: make(chan struct{})}
}

func (j *JoinCompleter) Name() string { return "join-completion" }

// Init reads the join record.
func (j *JoinCompleter) Init(ctx context.Context) error {
	st, err := cluster.Load(j.layout)
	j.state = st
	return err
}

// Start reports the join in the background, retrying until it is taken.
func (j *JoinCompleter) Start(ctx context.Context) error {
	if j.state.TokenID == "" {
		close(j.done)
		return nil
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	j.cancel = cancel
	go func() {
		defer close(j.done)
		if err := j.complete(runCtx); err != nil && runCtx.Err() == nil {
			klog.FromContext(ctx).Error(err, "Could not report the join complete; the token's use is freed when its reservation expires")
		}
	}()
	return nil
}

func (j *JoinCompleter) complete(ctx context.Context) error {
	log := klog.FromContext(ctx)
	rest, err := clientcmd.BuildConfigFromFlags("", j.layout.Credential("kubelet.config"))
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return err
	}
	name, err := NodeName(j.layout)
	if err != nil {
		return err
	}
	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		return err == nil && nodeReady(n), nil
	}); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(j.layout.Cert("kubelet"), j.layout.Key("kubelet"))
	if err != nil {
		return err
	}
	req := CompleteRequest{TokenID: j.state.TokenID, Attempt: j.state.Attempt}
	return wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		var lastErr error
		for _, addr := range j.state.Agents {
			err := NewClient(addr, j.state.CAHash, &cert).Complete(ctx, req)
			var refused *RefusedError
			if err == nil || errors.As(err, &refused) {
				if err != nil {
					log.Info("WARNING: the cluster agent did not take the join's completion; the node works, but the token's use comes back when its reservation expires", "agent", addr, "reason", err)
				} else {
					log.Info("Reported the join complete; its token use is consumed", "agent", addr, "token", req.TokenID)
				}
				st := j.state
				st.TokenID, st.Attempt = "", ""
				return true, cluster.Save(j.layout, st)
			}
			lastErr = err
		}
		log.V(1).Info("No cluster agent answered; retrying", "err", lastErr)
		return false, nil
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop ends the reporting; a later start retries it.
func (j *JoinCompleter) Stop(ctx context.Context) error {
	if j.cancel != nil {
		j.cancel()
	}
	select {
	case <-j.done:
	case <-ctx.Done():
	}
	return nil
}
