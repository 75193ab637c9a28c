package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubeseed/kubeseed/internal/daemon"
	"github.com/kubeseed/kubeseed/internal/datadir"
)

func newStopCommand(g *globalOptions) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the running node cleanly",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			return stopNode(cmd, l, timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for a clean stop")
	return cmd
}

// stopNode ends the node running on l, if one runs, and waits for it.
func stopNode(cmd *cobra.Command, l datadir.Layout, timeout time.Duration) error {
	pid, err := daemon.RunningPID(l)
	if err != nil {
		return err
	}
	if pid == 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "kubeseed is not running on %s\n", l.Root)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal pid %d: %w", pid, err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "stopping kubeseed (pid %d)...\n", pid)
	err = wait.PollUntilContextTimeout(cmd.Context(), 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		p, _ := daemon.RunningPID(l)
		return p == 0 && !alive(pid), nil
	})
	if err != nil && cmd.Context().Err() != nil {
		return fmt.Errorf("pid %d is still stopping: %w", pid, err)
	}
	if err != nil {
		return fmt.Errorf("pid %d still running after %s; check its log, or force it with `kill -9 %d`", pid, timeout, pid)
	}
	fmt.Fprintln(cmd.OutOrStdout(), "kubeseed stopped")
	return nil
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
