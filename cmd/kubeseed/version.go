package main

import (
	"fmt"

	"github.com/spf13/cobra"
	etcdversion "go.etcd.io/etcd/api/v3/version"
	k8sversion "k8s.io/component-base/version"

	"github.com/kubeseed/kubeseed/internal/services"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of kubeseed and what it embeds",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "kubeseed %s\nKubernetes %s\netcd %s\n",
				version, k8sversion.Get().GitVersion, etcdversion.Version)
		},
	}
}

func newPortsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ports",
		Short: "Print the table of services and ports as Markdown",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprint(cmd.OutOrStdout(), services.MarkdownTable())
		},
	}
}
