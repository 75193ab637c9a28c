package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/containerruntime"
)

func newImagesCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "images", Short: "Import and list container images (no registry needed)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "import FILE...",
		Short: "Import OCI or docker-archive tarballs (optionally gzipped)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			for _, f := range files {
				if err := containerruntime.CheckArchive(f); err != nil {
					return err
				}
			}
			client, err := connect(cmd, g)
			if err != nil {
				return err
			}
			defer client.Close()
			for _, f := range files {
				fmt.Fprintf(cmd.ErrOrStderr(), "importing %s...\n", f)
				names, err := containerruntime.ImportFile(cmd.Context(), client, f)
				if err != nil {
					return fmt.Errorf("import %s: %w", f, err)
				}
				for _, n := range names {
					fmt.Fprintf(cmd.OutOrStdout(), "imported %s\n", n)
				}
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "ls",
		Short: "List the node's images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := connect(cmd, g)
			if err != nil {
				return err
			}
			defer client.Close()
			imgs, err := containerruntime.List(cmd.Context(), client)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tDIGEST\tSIZE")
			for _, i := range imgs {
				fmt.Fprintf(tw, "%s\t%s\t%.1f MiB\n", i.Name, i.Digest, float64(i.Size)/(1<<20))
			}
			return tw.Flush()
		},
	})
	return cmd
}
