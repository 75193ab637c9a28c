package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/daemon"
	"github.com/kubeseed/kubeseed/internal/features"
)

func newEnableCommand(g *globalOptions) *cobra.Command {
	return newFeatureCommand(g, "enable", "Enable a feature on this node (no restart needed)", true)
}

func newDisableCommand(g *globalOptions) *cobra.Command {
	return newFeatureCommand(g, "disable", "Disable a feature on this node (no restart needed)", false)
}

func newFeatureCommand(g *globalOptions, verb, short string, on bool) *cobra.Command {
	reg := features.Default()
	var upstream string
	cmd := &cobra.Command{
		Use:       verb + " FEATURE",
		Short:     short,
		Long:      short + ". Features:\n" + listNames(reg),
		ValidArgs: reg.Names(),
		Args:      cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			if _, err := os.Stat(l.ArgsDir()); err != nil {
				return fmt.Errorf("no node in %s (start one with `kubeseed start`): %w", l.Root, err)
			}
			pid, err := daemon.RunningPID(l)
			if err != nil {
				return err
			}
			n := features.Node{
				Layout:   l,
				Running:  pid != 0,
				Out:      cmd.OutOrStdout(),
				Progress: func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), msg) },
			}
			if len(argv) == 0 {
				return fmt.Errorf("name a feature to %s:\n%s", verb, reg.Describe(n))
			}
			if on {
				opts := map[string]string{}
				if cmd.Flags().Changed("upstream") {
					opts["upstream"] = upstream
				}
				return reg.EnableWith(cmd.Context(), argv[0], n, opts)
			}
			return reg.Disable(cmd.Context(), argv[0], n)
		},
	}
	if on {
		cmd.Flags().StringVar(&upstream, "upstream", "", "dns only: resolvers CoreDNS forwards to, comma-separated IPs, or \"auto\" for the host's /etc/resolv.conf nameservers")
	}
	return cmd
}

func listNames(reg *features.Registry) string {
	out := ""
	for _, name := range reg.Names() {
		f, _ := reg.Lookup(name)
		out += fmt.Sprintf("  %-8s %s\n", name, f.Description())
	}
	return out
}
