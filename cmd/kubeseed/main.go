// Command kubeseed is a lightweight Kubernetes distribution in one binary.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/datadir"
)

// version is stamped by the build (-X main.version=...).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeseed: error:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit code (e.g. kubectl's).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func exitCode(err error) int {
	if e, ok := err.(exitError); ok {
		return e.code
	}
	return 1
}

type globalOptions struct {
	dataDir string
	// testHooks is the hidden --test-hooks: only with it are the test-hook
	// variables (KUBESEED_FAULT_AFTER_WRITES, KUBESEED_TEST_NOW) honoured.
	testHooks bool
}

// testHookEnv returns the test-hook variable name. Set without --test-hooks
// it is an error, not ignored: a stray variable in a user's environment must
// neither kill a certificate change nor shift the clock unnoticed.
func (g *globalOptions) testHookEnv(name string) (string, error) {
	v := os.Getenv(name)
	if v != "" && !g.testHooks {
		return "", fmt.Errorf("%s is set, but it is a test hook honoured only with --test-hooks; unset it (nothing was changed)", name)
	}
	return v, nil
}

func (g *globalOptions) layout() (datadir.Layout, error) {
	return datadir.New(g.dataDir)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newRootCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:           "kubeseed",
		Short:         "A lightweight, secure Kubernetes in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", envOr("KUBESEED_DATA_DIR", datadir.Default),
		"data directory (env KUBESEED_DATA_DIR)")
	root.PersistentFlags().BoolVar(&g.testHooks, "test-hooks", false,
		"for tests only: honour KUBESEED_FAULT_AFTER_WRITES and KUBESEED_TEST_NOW")
	_ = root.PersistentFlags().MarkHidden("test-hooks")
	root.AddCommand(
		newStartCommand(g),
		newStatusCommand(g),
		newConfigCommand(g),
		newKubectlCommand(g),
		newTokenCommand(g),
		newAddUserCommand(g),
		newAddNodeCommand(g),
		newJoinTokenCommand(g),
		newJoinCommand(g),
		newRemoveNodeCommand(g),
		newLeaveCommand(g),
		newRecoverCommand(g),
		newEnableCommand(g),
		newDisableCommand(g),
		newStopCommand(g),
		newResetCommand(g),
		newRefreshCertsCommand(g),
		newVersionCommand(),
		newPortsCommand(),
		newContainerdCommand(),
		newCtrCommand(g),
		newImagesCommand(g),
	)
	return root
}

// passthroughLayout takes a leading --data-dir from the raw arguments of a
// command whose flags belong to the tool it wraps (kubectl, ctr).
func (g *globalOptions) passthroughLayout(args []string) (datadir.Layout, []string, error) {
	if len(args) >= 2 && args[0] == "--data-dir" {
		g.dataDir, args = args[1], args[2:]
	}
	l, err := g.layout()
	return l, args, err
}
