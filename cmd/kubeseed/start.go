package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/daemon"
)

func newStartCommand(g *globalOptions) *cobra.Command {
	var (
		portOffset int
		nodeName   string
	)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start the node in the foreground (bootstraps the data dir on first start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("port-offset") {
				if v := os.Getenv("KUBESEED_PORT_OFFSET"); v != "" {
					if portOffset, err = strconv.Atoi(v); err != nil {
						return fmt.Errorf("KUBESEED_PORT_OFFSET=%q is not a whole number", v)
					}
				}
			}
			if portOffset < 0 || portOffset > 40000 {
				return fmt.Errorf("--port-offset %d is out of range (0 to 40000)", portOffset)
			}
			if os.Geteuid() != 0 {
				fmt.Fprintln(os.Stderr, "kubeseed: warning: not running as root; the node components need root")
			}
			begin := time.Now()
			progress := func(msg string) { fmt.Fprintf(os.Stderr, "kubeseed: %s\n", msg) }
			o := daemon.Options{Progress: progress}
			o.Bootstrap.PortOffset = portOffset
			o.Bootstrap.NodeName = nodeName
			o.Ready = func() {
				progress(fmt.Sprintf("node ready in %s; try: kubeseed --data-dir %s kubectl get namespaces",
					time.Since(begin).Round(time.Millisecond), l.Root))
			}
			if err := daemon.Run(cmd.Context(), l, o); err != nil {
				return err
			}
			progress("stopped")
			return nil
		},
	}
	cmd.Flags().IntVar(&portOffset, "port-offset", 0,
		"first start only: add this to every default port, to run several nodes on one host (env KUBESEED_PORT_OFFSET)")
	cmd.Flags().StringVar(&nodeName, "node-name", os.Getenv("KUBESEED_NODE_NAME"),
		"first start only: the node's name; default the hostname (env KUBESEED_NODE_NAME)")
	return cmd
}
