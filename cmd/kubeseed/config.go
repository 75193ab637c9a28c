package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/credentials"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/services"
)

func newConfigCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the admin kubeconfig, pointing at this host's default IP",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			ports, err := services.Ports(l)
			if err != nil {
				return fmt.Errorf("%w (has this node been started? `kubeseed start`)", err)
			}
			ip, err := hostinfo.DefaultIP()
			if err != nil {
				return err
			}
			server := "https://" + net.JoinHostPort(ip.String(), strconv.Itoa(ports["kube-apiserver"]))
			data, err := credentials.WithServer(l.AdminKubeconfig(), server)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
}
