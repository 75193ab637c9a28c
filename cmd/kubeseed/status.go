package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/daemon"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/status"
)

func newStatusCommand(g *globalOptions) *cobra.Command {
	var (
		waitReady bool
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the node runs, each service's health and each certificate's days left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			if _, err := g.clock(); err != nil {
				return err
			}
			var r *status.Report
			if !waitReady {
				// Waiting covers a node whose first start is still bootstrapping.
				if _, err := os.Stat(l.ArgsDir()); err != nil {
					return fmt.Errorf("no node in %s (start one with `kubeseed start`): %w", l.Root, err)
				}
			}
			if waitReady {
				r, err = waitUntilReady(cmd.Context(), l, g.clock, timeout, os.Stderr)
			} else {
				r, err = collect(cmd.Context(), l, g.clock)
			}
			if r != nil {
				now, _ := g.clock() // checked above
				printReport(cmd.OutOrStdout(), l, r, now)
			}
			if err != nil {
				return err
			}
			if !r.Ready() {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&waitReady, "wait-ready", false, "block, showing progress, until the node is ready")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "with --wait-ready: how long to wait")
	return cmd
}

// collect reads the node's status; clock is the time certificates' days
// left are measured against.
func collect(ctx context.Context, l datadir.Layout, clock func() (time.Time, error)) (*status.Report, error) {
	pid, err := daemon.RunningPID(l)
	if err != nil {
		return nil, err
	}
	now, err := clock()
	if err != nil {
		return nil, err
	}
	return status.Collect(ctx, l, pid, now)
}

func waitUntilReady(ctx context.Context, l datadir.Layout, clock func() (time.Time, error), timeout time.Duration, progress io.Writer) (*status.Report, error) {
	start := time.Now()
	last := ""
	sawRunning := false
	var r *status.Report
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		r, err = collect(ctx, l, clock)
		if err == nil && r.PID != 0 {
			sawRunning = true
		}
		if sawRunning && err == nil && r.PID == 0 {
			return false, errors.New("kubeseed stopped while starting; see its log for the error")
		}
		if err == nil && r.Ready() {
			fmt.Fprintf(progress, "node ready after %s\n", time.Since(start).Round(100*time.Millisecond))
			return true, nil
		}
		msg := "waiting for kubeseed to start"
		if err != nil {
			msg = "waiting: " + err.Error()
		} else if r.PID != 0 {
			msg = "waiting for:"
			for _, s := range r.Services {
				if !s.Healthy {
					msg += " " + s.Name
				}
			}
			if !r.Node.Ready {
				msg += " node " + r.Node.Name + " Ready (" + r.Node.Reason + ")"
			}
			if r.TokenFile != nil {
				msg += " token file (" + r.TokenFile.Error() + ")"
			}
		}
		if msg != last {
			fmt.Fprintf(progress, "[%s] %s\n", time.Since(start).Round(time.Second), msg)
			last = msg
		}
		return false, nil
	})
	if wait.Interrupted(err) {
		return r, fmt.Errorf("node not ready after %s (%s); see the kubeseed log, or run `kubeseed status`", timeout, last)
	}
	return r, err
}

func printReport(w io.Writer, l datadir.Layout, r *status.Report, now time.Time) {
	if r.PID == 0 {
		fmt.Fprintf(w, "kubeseed is not running (data dir %s)\n", l.Root)
	} else {
		state := "not ready"
		if r.Ready() {
			state = "ready"
		}
		fmt.Fprintf(w, "kubeseed is running (pid %d), %s; data dir %s\n", r.PID, state, l.Root)
	}
	fmt.Fprintf(w, "role: %s\n", r.Role)
	fmt.Fprintf(w, "authorization: %s\n", r.Authorization)
	node := "not ready"
	if r.Node.Ready {
		node = "Ready"
	} else if r.Node.Reason != "" {
		node += " (" + r.Node.Reason + ")"
	}
	if r.PID != 0 {
		fmt.Fprintf(w, "node %s: %s\n", r.Node.Name, node)
	}
	if r.Role != cluster.Worker {
		fmt.Fprintf(w, "dns: %s\n", dnsLine(r.DNS, r.PID != 0))
	}
	if r.TokenFile != nil {
		fmt.Fprintf(w, "token file: FAILED: %v; no bearer token authenticates until it is fixed "+
			"(client certificates, as in `kubeseed kubectl`, still work)\n", r.TokenFile)
	}
	for _, a := range r.Adaptations {
		fmt.Fprintf(w, "host adaptation: %s\n", a)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tPORT\tBIND\tHEALTH")
	for _, s := range r.Services {
		h := "-"
		if r.PID != 0 {
			h = "ok"
			if s.Err != nil {
				h = "unhealthy: " + s.Err.Error()
			}
		}
		if s.Off {
			fmt.Fprintf(tw, "%s\toff\t-\tturned off in its args file\n", s.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Name, s.Port, s.Bind, h)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tEXPIRES\tDAYS LEFT")
	for _, c := range r.Certs {
		if c.Err != nil {
			fmt.Fprintf(tw, "%s\t-\t%v\n", c.Name, c.Err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\n", c.Name, c.NotAfter.Format("2006-01-02"), c.DaysLeft)
	}
	tw.Flush()
	if r.Renewal != nil {
		fmt.Fprintf(w, "\n%s\n", r.Renewal.Describe(now))
	}
	if len(r.Nodes) > 1 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLUSTER NODE\tROLE\tADDRESS\tREADY")
		for _, n := range r.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", n.Name, n.Role, n.IP, n.Ready)
		}
		tw.Flush()
	}
	if len(r.Etcd) > 1 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ETCD MEMBER	PEER URL	ROLE	ANSWERS")
		for _, m := range r.Etcd {
			role := "learner"
			if m.Voter {
				role = "voter"
			}
			if m.Leader {
				role += ", leader"
			}
			if m.Self {
				role += ", this node"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", m.Name, strings.Join(m.PeerURLs, ","), role, m.Answers)
		}
		tw.Flush()
	}
}

func dnsLine(d status.DNSState, running bool) string {
	switch {
	case !d.Enabled && d.Detail != "":
		return "unknown (" + d.Detail + ")"
	case !d.Enabled:
		return "disabled"
	case !running:
		return "enabled"
	case d.Ready:
		return "enabled, Ready (" + d.Detail + ")"
	default:
		return "enabled, not Ready (" + d.Detail + ")"
	}
}
