package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/agent"
	"github.com/kubeseed/kubeseed/internal/daemon"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/jointoken"
	"github.com/kubeseed/kubeseed/internal/pki"
)

func newAddNodeCommand(g *globalOptions) *cobra.Command {
	var (
		worker bool
		ttl    time.Duration
		uses   int
		format string
	)
	cmd := &cobra.Command{
		Use:   "add-node",
		Short: "Make a join token and print the `kubeseed join` line for a new node",
		Long: `Make a join token and print how a new node joins this cluster, one line per host IP.
The token is single-use by default and expires after --ttl. A join that fails
does not use it up; it is used once the new node reports Ready.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < time.Minute || ttl > 30*24*time.Hour {
				return fmt.Errorf("--ttl %s: must be between 1m and 720h", ttl)
			}
			if uses < 1 || uses > 1000 {
				return fmt.Errorf("--uses %d: must be between 1 and 1000", uses)
			}
			switch format {
			case "pretty", "short", "json":
			default:
				return fmt.Errorf("--format %q: use pretty, short or json", format)
			}
			l, err := g.layout()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			store, closeStore, err := openTokenStore(g)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := agent.CheckPrerequisites(ctx, l); err != nil {
				return fmt.Errorf("this node cannot take others yet: %w", err)
			}
			role := jointoken.Worker
			if !worker {
				role = jointoken.ControlPlane
				if err := agent.CheckControlPlanePrerequisites(ctx, l); err != nil {
					return fmt.Errorf("this node cannot take control planes yet: %w", err)
				}
			}
			o, err := agent.LoadOptions(l)
			if err != nil {
				return err
			}
			ca, err := pki.LoadCert(l.Cert("ca"))
			if err != nil {
				return err
			}
			ips, err := hostinfo.HostIPs()
			if err != nil {
				return err
			}
			tok, rec, err := store.Create(ctx, role, ttl, uses, "kubeseed add-node")
			if err != nil {
				return fmt.Errorf("make a join token: %w", err)
			}
			var lines []string
			for _, ip := range ips {
				j := jointoken.JoinAddress{Addr: netJoin(ip.String(), o.SecurePort), Token: tok, CAHash: jointoken.CAHash(ca)}
				lines = append(lines, j.String())
			}
			return printJoin(cmd, format, lines, rec, agent.AuthorizationWarning(l))
		},
	}
	cmd.Flags().BoolVar(&worker, "worker", false, "the new node is a worker (no control plane); without it, a control plane (etcd voter, apiserver, controllers)")
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	cmd.Flags().IntVar(&uses, "uses", 1, "how many nodes may join with the token")
	cmd.Flags().StringVar(&format, "format", "pretty", "output: pretty, short (join lines only) or json")
	return cmd
}

func workerFlag(r jointoken.Role) string {
	if r == jointoken.Worker {
		return " --worker"
	}
	return ""
}

func netJoin(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func printJoin(cmd *cobra.Command, format string, lines []string, rec jointoken.Record, warning string) error {
	out := cmd.OutOrStdout()
	switch format {
	case "json":
		return json.NewEncoder(out).Encode(map[string]any{
			"id": rec.ID, "role": rec.Role, "expires": rec.Expires, "uses": rec.UsesLeft, "join": lines,
		})
	case "short":
		for _, l := range lines {
			fmt.Fprintln(out, "kubeseed join "+l+workerFlag(rec.Role))
		}
		return nil
	}
	what := "a worker"
	if rec.Role == jointoken.ControlPlane {
		what = "a control plane"
	}
	fmt.Fprintf(out, "Join %s with one of these (token %s, %d use(s), valid until %s):\n\n",
		what, rec.ID, rec.UsesLeft, rec.Expires.Local().Format(time.RFC1123))
	for _, l := range lines {
		fmt.Fprintln(out, "  kubeseed join "+l+workerFlag(rec.Role))
	}
	fmt.Fprintln(out, "\nThe node must reach this host on the cluster agent's port, and the apiserver's.")
	fmt.Fprintln(out, "The last part of the line is the SHA-256 of this cluster's CA: the joining node")
	fmt.Fprintln(out, "checks it before it sends the token.")
	if warning != "" {
		fmt.Fprintln(out, "\n"+warning)
	}
	return nil
}

func newJoinTokenCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "join-token",
		Short: "List or revoke the join tokens `kubeseed add-node` made",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the join tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, closeStore, err := openTokenStore(g)
			if err != nil {
				return err
			}
			defer closeStore()
			recs, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLE\tUSES LEFT\tJOINING\tEXPIRES")
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", r.ID, r.Role, r.UsesLeft, len(r.Reservations), r.Expires.Local().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}, &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a join token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			store, closeStore, err := openTokenStore(g)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := store.Revoke(cmd.Context(), a[0]); err != nil {
				return fmt.Errorf("revoke join token %s: %w (see `kubeseed join-token list`)", a[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked join token %s\n", a[0])
			return nil
		},
	})
	return cmd
}

func openTokenStore(g *globalOptions) (*jointoken.Store, func(), error) {
	l, err := g.layout()
	if err != nil {
		return nil, nil, err
	}
	if pid, err := daemon.RunningPID(l); err != nil || pid == 0 {
		return nil, nil, fmt.Errorf("the node on %s is not running: join tokens are kept in its datastore; start it first", l.Root)
	}
	o, err := agent.LoadOptions(l)
	if err != nil {
		return nil, nil, err
	}
	return agent.OpenTokens(o)
}
