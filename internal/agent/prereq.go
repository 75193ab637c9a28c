package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/node"
)

// CheckPrerequisites says whether the node on l, running, can take others:
// what a cluster needs cannot be switched on in a running process, so an
// older data dir gets it at its next start, and until then add-node
// refuses.
func CheckPrerequisites(ctx context.Context, l datadir.Layout) error {
	restart := "restart kubeseed once (`kubeseed stop`, then `kubeseed start`) to enable clustering"
	f, err := args.Load(l.Args(defaults.ControllerManagerComponent))
	if err != nil {
		return err
	}
	for _, kv := range defaults.ClusterFlags(defaults.ControllerManagerComponent) {
		if v, _ := f.Get(kv[0]); v != kv[1] {
			return fmt.Errorf("%s has --%s=%q, and a cluster needs %q: set it and %s", f.Path, kv[0], v, kv[1], restart)
		}
	}
	if _, err := os.Stat(l.Args(defaults.CNITemplateFile)); err != nil {
		return fmt.Errorf("this node has a static pod network (no %s): a cluster needs each node's own pod range; see the README's Pod network section, then %s", l.Args(defaults.CNITemplateFile), restart)
	}
	if _, err := LoadOptions(l); err != nil {
		return fmt.Errorf("%w; %s", err, restart)
	}
	kube, err := AdminClient(l)
	if err != nil {
		return err
	}
	name, err := NodeName(l)
	if err != nil {
		return err
	}
	n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read this node (%s) from the apiserver: %w", name, err)
	}
	if n.Spec.PodCIDR == "" {
		return fmt.Errorf("node %s has no pod range (spec.podCIDR): the running controller manager does not allocate them; %s", name, restart)
	}
	return nil
}

// AuthorizationMode is the mode of the node's authorization config.
func AuthorizationMode(l datadir.Layout) (authz.Mode, error) {
	path := l.Config(authz.ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	chain, err := authz.Parse(path, data)
	if err != nil {
		return "", err
	}
	m, ok := chain.Mode()
	if !ok {
		return "", fmt.Errorf("%s: neither AlwaysAllow nor Node,RBAC; a control plane joins only a cluster kubeseed manages the authorization of", path)
	}
	return m, nil
}

// AuthorizationWarning is what add-node says while AlwaysAllow is on:
// every node's certificate may then do anything in the cluster.
func AuthorizationWarning(l datadir.Layout) string {
	if m, err := AuthorizationMode(l); err == nil && m == authz.AlwaysAllow {
		return "WARNING: authorization is AlwaysAllow, so a joined node's credentials can do anything in the cluster; run `kubeseed enable rbac` (Node,RBAC) before nodes you do not fully trust join."
	}
	return ""
}

// AdminClient is a client of the local apiserver as admin.
func AdminClient(l datadir.Layout) (kubernetes.Interface, error) {
	rest, err := clientcmd.BuildConfigFromFlags("", l.AdminKubeconfig())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.AdminKubeconfig(), err)
	}
	return kubernetes.NewForConfig(rest)
}

// NodeName is the node's name: its kubelet's --hostname-override.
func NodeName(l datadir.Layout) (string, error) { return node.NameOf(l) }

// CheckControlPlanePrerequisites says whether the running node can take a
// control plane: its etcd member listens on the host's etcd-ha port, which
// other members reach it at.
func CheckControlPlanePrerequisites(ctx context.Context, l datadir.Layout) error {
	port, err := etcdHAPort(l)
	if err != nil {
		return fmt.Errorf("%w; restart kubeseed once (`kubeseed stop`, then `kubeseed start`) to enable control-plane joins", err)
	}
	if !anyReachable(ctx, []string{"https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}) {
		return fmt.Errorf("etcd does not listen on its HA peer port %d (%s): restart kubeseed once (`kubeseed stop`, then `kubeseed start`) so it does", port, l.Args(defaults.EtcdComponent))
	}
	return nil
}
