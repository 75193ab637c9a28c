package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/credentials"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/services"
)

func newConfigCommand(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "config [--output FILE]",
		Short: "Print the admin kubeconfig, pointing at this host's default IP",
		Long: "Prints the admin kubeconfig (credentials/client.config with the server set to this host's\n" +
			"default IP), or writes it to --output FILE with mode 0600. It holds the admin's private key:\n" +
			"prefer --output to a shell redirect, which creates the file with the umask's mode.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			server, err := defaultAPIServerURL(l)
			if err != nil {
				return err
			}
			data, err := credentials.WithServer(l.AdminKubeconfig(), server)
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				_, err = cmd.OutOrStdout().Write(data)
				return err
			}
			if err := credentials.WriteKubeconfigTo(output, data); err != nil {
				return fmt.Errorf("--output: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (mode 0600): admin kubeconfig, server %s\n", output, server)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the kubeconfig to FILE (mode 0600, replaced atomically) instead of printing it; \"-\" prints")
	return cmd
}

// defaultAPIServerURL is the apiserver on this host's default-route IP, for
// kubeconfigs used from other machines.
func defaultAPIServerURL(l datadir.Layout) (string, error) {
	ports, err := services.Ports(l)
	if err != nil {
		return "", fmt.Errorf("%w (has this node been started? `kubeseed start`)", err)
	}
	ip, err := hostinfo.DefaultIP()
	if err != nil {
		return "", err
	}
	return "https://" + net.JoinHostPort(ip.String(), strconv.Itoa(ports["kube-apiserver"])), nil
}
