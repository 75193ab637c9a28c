package main

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/cert"
	k8sversion "k8s.io/component-base/version"

	"github.com/kubeseed/kubeseed/internal/agent"
	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/certrenew"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/daemon"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/jointoken"
)

func newJoinCommand(g *globalOptions) *cobra.Command {
	var (
		worker     bool
		nodeName   string
		portOffset int
	)
	cmd := &cobra.Command{
		Use:   "join ADDRESS/TOKEN/CA-HASH [--worker]",
		Short: "Join the cluster that printed this line with `kubeseed add-node`, then run the node in the foreground",
		Long: `Join a cluster with the line ` + "`kubeseed add-node`" + ` printed on one of its control-plane nodes.
The cluster agent's CA must match the hash at the end of the line before the
token is sent. A worker makes its own keys and the cluster signs its
certificates. A control plane (no --worker) receives the cluster's CA keys
over that pinned channel, joins etcd as a learner, becomes a voter once it
has caught up, and issues its own certificates. Later starts are ` + "`kubeseed start`" + `.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			ja, err := jointoken.ParseJoinAddress(a[0])
			if err != nil {
				return fmt.Errorf("the join line: %w", err)
			}
			l, err := g.layout()
			if err != nil {
				return err
			}
			if v := os.Getenv("KUBESEED_PORT_OFFSET"); v != "" && !cmd.Flags().Changed("port-offset") {
				if portOffset, err = strconv.Atoi(v); err != nil {
					return fmt.Errorf("KUBESEED_PORT_OFFSET=%q is not a whole number", v)
				}
			}
			if portOffset < 0 || portOffset > 40000 {
				return fmt.Errorf("--port-offset %d is out of range (0 to 40000)", portOffset)
			}
			// The renewal through the agent takes start's KUBESEED_CERT_*
			// variables; later starts take start's flags too.
			renewal, err := renewalFromEnv(cmd, 30, certrenew.Options{}.WithDefaults())
			if err != nil {
				return err
			}
			if err := emptyDataDir(l); err != nil {
				return err
			}
			if nodeName == "" {
				if nodeName, err = hostinfo.NodeName(); err != nil {
					return err
				}
			}
			if errs := validation.IsDNS1123Subdomain(nodeName); len(errs) > 0 {
				return fmt.Errorf("--node-name %q: %v", nodeName, errs)
			}
			progress := func(msg string) { fmt.Fprintf(os.Stderr, "kubeseed: %s\n", msg) }
			if !worker {
				return joinControlPlane(cmd.Context(), l, ja, nodeName, portOffset, renewal, progress)
			}
			keys, csrs, err := agent.NewWorkerCSRs(nodeName)
			if err != nil {
				return err
			}
			progress("asking the cluster agent at " + ja.Addr + " (its CA must match the hash in the join line)")
			resp, err := agent.NewClient(ja.Addr, ja.CAHash, nil).Join(cmd.Context(), agent.JoinRequest{
				Token: ja.Token.String(), Role: jointoken.Worker, NodeName: nodeName,
				Version: k8sversion.Get().GitVersion, CSRs: csrs,
			})
			if err != nil {
				return fmt.Errorf("join %s: %w", ja.Addr, err)
			}
			files, err := workerFiles(resp, ja.CAHash, nodeName, portOffset, keys)
			if err != nil {
				return fmt.Errorf("the cluster agent's answer: %w (nothing was written; the token's use comes back when its reservation expires)", err)
			}
			st := cluster.State{Role: cluster.Worker, Agents: []string{ja.Addr}, CAHash: ja.CAHash,
				APIServers: resp.APIServers, NodeIP: resp.NodeIP, TokenID: resp.TokenID, Attempt: resp.Attempt}
			if err := writeJoined(l, st, func() error { return bootstrap.WriteWorker(cmd.Context(), l, files) }); err != nil {
				return err
			}
			progress(fmt.Sprintf("joined as worker %s (%s); starting the node", nodeName, resp.NodeIP))
			begin := time.Now()
			o := daemon.Options{Progress: progress, Renewal: renewal}
			o.Bootstrap.NodeName = nodeName
			o.Ready = func() { progress(fmt.Sprintf("worker ready in %s", time.Since(begin).Round(time.Millisecond))) }
			if err := daemon.Run(cmd.Context(), l, o); err != nil {
				return err
			}
			progress("stopped; start it again with `kubeseed start`")
			return nil
		},
	}
	cmd.Flags().BoolVar(&worker, "worker", false, "join as a worker (no control plane)")
	cmd.Flags().StringVar(&nodeName, "node-name", os.Getenv("KUBESEED_NODE_NAME"), "the node's name; default the hostname (env KUBESEED_NODE_NAME)")
	cmd.Flags().IntVar(&portOffset, "port-offset", 0, "add this to every default port of this node (env KUBESEED_PORT_OFFSET)")
	return cmd
}

// emptyDataDir refuses a data dir that holds anything but what a stopped
// node leaves in run/.
func emptyDataDir(l datadir.Layout) error {
	if pid, err := daemon.RunningPID(l); err == nil && pid != 0 {
		return fmt.Errorf("a node runs on %s (pid %d): a node joins with an empty data dir; use another --data-dir, or stop and `kubeseed reset` this one", l.Root, pid)
	}
	if interrupted, err := cluster.Interrupted(l); err != nil {
		return err
	} else if interrupted {
		fmt.Fprintf(os.Stderr, "kubeseed: %s holds an interrupted join; discarding it\n", l.Root)
		if err := removeContents(l.Root); err != nil {
			return fmt.Errorf("discard the interrupted join in %s: %w", l.Root, err)
		}
	}
	entries, err := os.ReadDir(l.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != "run" {
			return fmt.Errorf("%s already holds a node (%s): a node joins with an empty data dir; `kubeseed reset` it first, or use another --data-dir", l.Root, e.Name())
		}
	}
	return nil
}

// writeJoined fills the empty data dir of a join: write, then the join
// record st. A marker makes a join killed while writing discardable; on an
// error the data dir is emptied again.
func writeJoined(l datadir.Layout, st cluster.State, write func() error) error {
	err := fsutil.EnsureDir(l.Root, 0o755)
	if err == nil {
		err = fsutil.WriteFileAtomic(cluster.JoiningMarker(l), nil, 0o600)
	}
	if err == nil {
		err = write()
	}
	if err == nil {
		err = cluster.Save(l, st)
	}
	if err == nil {
		err = os.Remove(cluster.JoiningMarker(l))
	}
	if err != nil {
		_ = removeContents(l.Root)
		return fmt.Errorf("write the %s's data dir %s: %w (it was emptied again; join anew)", st.Role, l.Root, err)
	}
	return nil
}

func removeContents(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(dir+"/"+e.Name()))
	}
	return errors.Join(errs...)
}

// workerFiles checks the agent's answer against the pin and the keys.
func workerFiles(resp *agent.JoinResponse, pin, nodeName string, portOffset int, keys map[string]crypto.Signer) (bootstrap.WorkerFiles, error) {
	w := bootstrap.WorkerFiles{NodeName: nodeName, NodeIP: resp.NodeIP, PortOffset: portOffset, Keys: keys,
		ClusterCIDR: resp.Cluster.ClusterCIDR, ClusterDNS: resp.Cluster.ClusterDNS, ClusterDomain: resp.Cluster.ClusterDomain}
	cas, err := cert.ParseCertsPEM(resp.CA)
	if err != nil {
		return w, fmt.Errorf("CA: %w", err)
	}
	if got := jointoken.CAHash(cas[0]); got != pin {
		return w, fmt.Errorf("its CA's hash %s is not the join line's %s", got, pin)
	}
	w.CA = cas[0]
	if w.Certs, err = agent.ParseCerts(resp.Certs); err != nil {
		return w, err
	}
	if w.ClusterCIDR == "" || w.ClusterDNS == "" || w.ClusterDomain == "" {
		return w, errors.New("the cluster's pod range, DNS IP or domain is missing")
	}
	return w, nil
}
