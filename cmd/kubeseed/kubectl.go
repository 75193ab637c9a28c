package main

import (
	"os"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
)

func newKubectlCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl [kubectl args...]",
		Short:              "Run the embedded kubectl against this node as admin",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, args, err := g.passthroughLayout(args)
			if err != nil {
				return err
			}
			if os.Getenv("KUBECONFIG") == "" {
				os.Setenv("KUBECONFIG", l.AdminKubeconfig())
			}
			if os.Getenv("KUBECACHEDIR") == "" {
				os.Setenv("KUBECACHEDIR", l.KubectlCacheDir())
			}
			kubectl := kubectlcmd.NewDefaultKubectlCommand()
			kubectl.SetArgs(args)
			if code := cli.Run(kubectl); code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
}
