package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/daemon"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/node"
)

func newResetCommand(g *globalOptions) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Delete the data dir: certificates, credentials and all cluster data",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			ok, err := fsutil.Exists(l.Root)
			if err != nil {
				return err
			}
			if !ok {
				fmt.Fprintf(cmd.OutOrStdout(), "nothing to reset: %s does not exist\n", l.Root)
				return nil
			}
			if pid, err := daemon.RunningPID(l); err != nil {
				return err
			} else if pid != 0 {
				return fmt.Errorf("kubeseed is running on %s (pid %d); stop it first with `kubeseed stop`", l.Root, pid)
			}
			if l.Root == "/" || !looksLikeDataDir(l.Root) {
				return fmt.Errorf("%s does not look like a kubeseed data dir (no args/ or certs/); refusing to delete it", l.Root)
			}
			if !yes {
				fmt.Fprintf(cmd.OutOrStdout(), "This deletes %s: every certificate, credential and all cluster data.\nType 'yes' to continue: ", l.Root)
				answer, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(answer) != "yes" {
					return fmt.Errorf("reset cancelled; nothing was deleted")
				}
			}
			return cleanUp(cmd, l)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// cleanUp removes what the stopped node on l left on the host, then its
// data dir.
func cleanUp(cmd *cobra.Command, l datadir.Layout) error {
	removed, skipped, cerr := node.CleanupHost(cmd.Context(), l)
	for _, r := range removed {
		fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", r)
	}
	for _, s := range skipped {
		fmt.Fprintf(cmd.OutOrStdout(), "left alone: %s\n", s)
	}
	if cerr != nil {
		return fmt.Errorf("clean up the host: %w; fix that and run `kubeseed reset` (the data dir is kept)", cerr)
	}
	if err := os.RemoveAll(l.Root); err != nil {
		return fmt.Errorf("delete %s: %w", l.Root, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", l.Root)
	return nil
}

// looksLikeDataDir accepts a bootstrapped data dir, an empty one, and one
// that holds only run/: a start that was refused before bootstrapping.
func looksLikeDataDir(dir string) bool {
	for _, sub := range []string{"args", "certs"} {
		if st, err := os.Stat(dir + "/" + sub); err == nil && st.IsDir() {
			return true
		}
	}
	entries, err := os.ReadDir(dir)
	return err == nil && (len(entries) == 0 || len(entries) == 1 && entries[0].Name() == "run" && entries[0].IsDir())
}
