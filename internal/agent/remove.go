package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/services"
)

// LeavePath is where a worker asks to be removed, with its own client
// certificate: `kubeseed leave`.
const LeavePath = "/cluster/api/v2.0/leave"

// workerLabel marks the nodes that joined as workers.
const workerLabel = "node-role.kubernetes.io/worker"

// ErrNotWorker: only workers can be removed yet.
var ErrNotWorker = errors.New("not a worker")

// removeWorker records name as removed, so its certificates are refused
// from now on, then deletes its Node (its pods are then garbage-collected).
// A node that exists must be a worker. The record comes first: a kubelet
// still running would otherwise register its Node again.
func removeWorker(ctx context.Context, kube kubernetes.Interface, removed *cluster.RemovedNodes, name string, now time.Time, force, controlPlanes bool) error {
	n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && !force:
		return fmt.Errorf("the cluster has no node %s (`kubeseed kubectl get nodes`); --force records it as removed anyway", name)
	case apierrors.IsNotFound(err):
		n = nil
	case err != nil:
		return fmt.Errorf("get node %s: %w", name, err)
	}
	if n != nil && !isWorker(n) && !controlPlanes {
		return fmt.Errorf("node %s is a control plane: %w (run `kubeseed remove-node %s` on another control plane)", name, ErrNotWorker, name)
	}
	if err := removed.Add(ctx, name, now); err != nil {
		return err
	}
	if n == nil {
		return nil
	}
	if err := kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("node %s is recorded as removed (its certificates are refused), but deleting its Node failed: %w; run `kubeseed kubectl delete node %s`", name, err, name)
	}
	return nil
}

func isWorker(n *corev1.Node) bool {
	_, ok := n.Labels[workerLabel]
	return ok
}

// RemoveNode removes node name from the cluster, on a running control
// plane: `kubeseed remove-node`. A control plane leaves etcd first.
func RemoveNode(ctx context.Context, l datadir.Layout, name string, force bool) error {
	self, err := NodeName(l)
	if err != nil {
		return err
	}
	if name == self {
		return fmt.Errorf("%s is this node; a node cannot remove itself (to take this machine out, use `kubeseed reset`)", name)
	}
	kube, err := AdminClient(l)
	if err != nil {
		return err
	}
	cli, o, err := etcdOf(l)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	etcdArgs, err := args.Load(l.Args(defaults.EtcdComponent))
	if err != nil {
		return err
	}
	clientPort, err := services.MustLookup("etcd").PortIn(etcdArgs)
	if err != nil {
		return err
	}
	tlsCfg, err := health.ClientTLS(o.EtcdCAFile, o.EtcdCertFile, o.EtcdKeyFile)
	if err != nil {
		return err
	}
	members := memberRemoval{
		cli:       cli,
		tls:       tlsCfg,
		clientURL: func(host string) string { return "https://" + net.JoinHostPort(host, strconv.Itoa(clientPort)) },
		dial:      anyReachable,
	}
	// The etcd member goes first: a control plane that cannot be taken
	// out of etcd safely keeps its Node and its certificates.
	if _, err := members.remove(ctx, name, force); err != nil {
		return err
	}
	return removeWorker(ctx, kube, cluster.NewRemovedNodes(cli), name, time.Now(), force, true)
}

// leave removes the worker whose certificate asks.
func (s *Server) leave(w http.ResponseWriter, r *http.Request) {
	node, ok := nodeOf(r)
	if !ok {
		refuse(w, http.StatusUnauthorized, KindRequest, "leaving needs the node's client certificate (system:node:<name>) from the cluster CA")
		return
	}
	if s.cfg.Removed == nil {
		refuse(w, http.StatusServiceUnavailable, KindInternal, "this agent keeps no record of removed nodes")
		return
	}
	if err := removeWorker(r.Context(), s.cfg.Kube, s.cfg.Removed, node, s.cfg.Now(), true, false); err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, ErrNotWorker) {
			status = http.StatusForbidden
		}
		refuse(w, status, KindRequest, "%v", err)
		return
	}
	klog.FromContext(r.Context()).Info("A worker left the cluster; its certificates are refused from now on", "node", node)
	w.WriteHeader(http.StatusNoContent)
}

// Leave asks the agent to remove this node, which its cert names.
func (c *Client) Leave(ctx context.Context) error {
	return c.post(ctx, LeavePath, struct{}{}, nil)
}

// LeaveCluster asks the cluster's agents, in turn, to remove the worker on
// l, with its kubelet client certificate. It returns the agents tried.
func LeaveCluster(ctx context.Context, l datadir.Layout) ([]string, error) {
	st, err := cluster.Load(l)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(l.Cert("kubelet"), l.Key("kubelet"))
	if err != nil {
		return st.Agents, fmt.Errorf("this worker's client certificate: %w", err)
	}
	var errs []error
	for _, addr := range st.Agents {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := NewClient(addr, st.CAHash, &cert).Leave(actx)
		cancel()
		if err == nil {
			return st.Agents, nil
		}
		errs = append(errs, err)
		var refused *RefusedError
		if errors.As(err, &refused) {
			break // the cluster said no; another agent says the same
		}
	}
	return st.Agents, errors.Join(errs...)
}
