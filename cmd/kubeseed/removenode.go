package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/agent"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/daemon"
)

func newRemoveNodeCommand(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "remove-node NAME",
		Short: "Remove a node from the cluster: its Node goes, and its certificates are refused from now on",
		Long: "Run on a control-plane node. A control plane leaves etcd first: the removal is refused if it\n" +
			"would leave the other voters without a quorum (the error names the members that are down) or\n" +
			"if the member does not answer (--force removes a dead one); etcd's leadership moves away first.\n" +
			"The node's name is recorded as removed in the datastore, so every apiserver refuses its\n" +
			"certificates (they cannot be revoked, only refused, until they expire), and its Node is deleted.\n" +
			"On a worker, `kubeseed leave` returns it to a clean state; a removed control plane stops, and\n" +
			"`kubeseed reset` cleans it.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			if st, err := cluster.Load(l); err != nil {
				return err
			} else if st.Role == cluster.Worker {
				return errors.New("this node is a worker: run remove-node on a control plane; to take this worker out, run `kubeseed leave` here")
			}
			if pid, err := daemon.RunningPID(l); err != nil || pid == 0 {
				return fmt.Errorf("the node on %s is not running: the cluster's record is in its datastore; start it first", l.Root)
			}
			name := argv[0]
			if err := agent.RemoveNode(cmd.Context(), l, name, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed node %s: its Node is deleted and its certificates are refused (within 10 s)\n", name)
			fmt.Fprintf(cmd.OutOrStdout(), "kubeseed on %s stops (kube-proxy exits once its Node is gone); run `kubeseed leave` there to clean it up\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove a control plane whose etcd member does not answer, or record a name the cluster has no Node of")
	return cmd
}

func newLeaveCommand(g *globalOptions) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "leave",
		Short: "Take this worker out of its cluster and return it to a clean state",
		Long: "Run on a worker. It stops the node, asks the cluster agent to remove it (its Node goes and\n" +
			"its certificates are refused), removes what it made on the host and deletes its data dir,\n" +
			"as `kubeseed reset` does.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			st, err := cluster.Load(l)
			if err != nil {
				return err
			}
			if st.Role != cluster.Worker {
				return fmt.Errorf("%s is not a worker: leave is for workers (a control plane is removed with `kubeseed reset`)", l.Root)
			}
			name, err := agent.NodeName(l)
			if err != nil {
				return err
			}
			// Stop first: upstream kube-proxy exits the whole process when
			// its Node is deleted, which would leave the pods running.
			if err := stopNode(cmd, l, timeout); err != nil {
				return err
			}
			agents, lerr := agent.LeaveCluster(cmd.Context(), l)
			var refused *agent.RefusedError
			switch {
			case errors.As(lerr, &refused):
				return fmt.Errorf("%w; the node is stopped and its data dir kept: `kubeseed start` runs it again", lerr)
			case lerr != nil:
				fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: no cluster agent took the leave (%s): %v\n"+
					"run `kubeseed remove-node %s` on a control plane so the cluster refuses this node's certificates\n",
					strings.Join(agents, ", "), lerr, name)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "the cluster removed node %s; its certificates are refused from now on\n", name)
			}
			return cleanUp(cmd, l)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the node to stop")
	return cmd
}
