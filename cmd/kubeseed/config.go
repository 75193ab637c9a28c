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
	return &cobra.Command{
		Use:   "config",
		Short: "Print the admin kubeconfig, pointing at this host's default IP",
		Args:  cobra.NoArgs,
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
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
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
