package main

import (
	"os"

	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins" // containerd's plugins, CRI included
	containerdcmd "github.com/containerd/containerd/v2/cmd/containerd/command"
	ctrapp "github.com/containerd/containerd/v2/cmd/ctr/app"
	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/containerruntime"
)

// newContainerdCommand is the process `kubeseed start` runs as containerd.
func newContainerdCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "containerd",
		Short:              "Run containerd (started by `kubeseed start`; not for direct use)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return containerdcmd.App().Run(cmd.Context(), append([]string{"containerd"}, args...))
		},
	}
}

func newCtrCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:                "ctr [ctr args...]",
		Short:              "Run containerd's ctr against this node's containerd (namespace k8s.io)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, args, err := g.passthroughLayout(args)
			if err != nil {
				return err
			}
			o, err := containerruntime.LoadOptions(l)
			if err != nil {
				return err
			}
			// ctr reads these; flags given by the user still win.
			if os.Getenv("CONTAINERD_ADDRESS") == "" {
				os.Setenv("CONTAINERD_ADDRESS", o.Address)
			}
			if os.Getenv("CONTAINERD_NAMESPACE") == "" {
				os.Setenv("CONTAINERD_NAMESPACE", containerruntime.Namespace)
			}
			return ctrapp.New().Run(cmd.Context(), append([]string{"ctr"}, args...))
		},
	}
}
