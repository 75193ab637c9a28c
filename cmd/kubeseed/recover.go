package main

import (
	"bufio"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/daemon"
	"github.com/kubeseed/kubeseed/internal/datastore"
)

func newRecoverCommand(g *globalOptions) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Rebuild a one-member datastore from this control plane after the cluster lost its quorum",
		Long: "Run on a stopped control plane whose etcd lost its quorum (most control planes are gone for\n" +
			"good). etcd is rebuilt as a cluster of this member alone, keeping every write this member\n" +
			"holds; the other members are dropped and their node names recorded as removed, so their\n" +
			"certificates are refused. Then `kubeseed start` this node, and join new control planes.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			if st, err := cluster.Load(l); err != nil {
				return err
			} else if st.Role == cluster.Worker {
				return fmt.Errorf("%s is a worker: it holds no datastore; run recover on a control plane", l.Root)
			}
			unlock, err := daemon.Lock(cmd.Context(), l)
			if err != nil {
				return fmt.Errorf("%w (recover runs on a stopped node)", err)
			}
			defer unlock()
			if !yes {
				fmt.Fprint(cmd.OutOrStdout(), "This makes this node's etcd member the only one of its cluster; the other members are dropped.\n"+
					"Do it only when they are gone for good (a quorum cannot come back). Type 'yes' to continue: ")
				answer, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(answer) != "yes" {
					return fmt.Errorf("recover cancelled; nothing was changed")
				}
			}
			rec, err := datastore.Recover(cmd.Context(), l, time.Now())
			if err != nil {
				return fmt.Errorf("recover: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "etcd is now a one-member cluster of %s, with every write up to revision %d.\n", rec.Member, rec.Revision)
			if len(rec.Removed) > 0 {
				fmt.Fprintf(out, "dropped members: %s (recorded as removed nodes: their certificates are refused).\n", strings.Join(rec.Removed, ", "))
				fmt.Fprintln(out, "Their Nodes are still listed: once this node runs, `kubeseed remove-node NAME --force` deletes each;")
				fmt.Fprintln(out, "`kubeseed reset` those machines before they join again.")
			}
			fmt.Fprintln(out, "Next: `kubeseed start`, then `kubeseed add-node` for new control planes.")
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
