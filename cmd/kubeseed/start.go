package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/certrenew"
	"github.com/kubeseed/kubeseed/internal/daemon"
)

func newStartCommand(g *globalOptions) *cobra.Command {
	var (
		portOffset int
		nodeName   string
		renewDays  int
		renewal    = certrenew.Options{}
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
			if renewal, err = renewalFromEnv(cmd, renewDays, renewal); err != nil {
				return err
			}
			afterOp, err := g.faultHook()
			if err != nil {
				return err
			}
			begin := time.Now()
			progress := func(msg string) { fmt.Fprintf(os.Stderr, "kubeseed: %s\n", msg) }
			o := daemon.Options{Progress: progress, Renewal: renewal, AfterOp: afterOp}
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
	cmd.Flags().IntVar(&renewDays, "cert-renew-days", 30,
		"renew a leaf certificate when it has fewer than this many days left (env KUBESEED_CERT_RENEW_DAYS)")
	cmd.Flags().DurationVar(&renewal.CheckInterval, "cert-check-interval", certrenew.DefaultCheckInterval,
		"how often the running node checks certificate expiry (env KUBESEED_CERT_CHECK_INTERVAL)")
	cmd.Flags().DurationVar(&renewal.IPPollInterval, "host-ip-poll-interval", certrenew.DefaultIPPollInterval,
		"how often the running node reads the host's IPs to keep serving certificates' SANs current (env KUBESEED_HOST_IP_POLL_INTERVAL)")
	return cmd
}

// renewalFromEnv applies the KUBESEED_* variables to flags not given.
func renewalFromEnv(cmd *cobra.Command, days int, o certrenew.Options) (certrenew.Options, error) {
	if v := os.Getenv("KUBESEED_CERT_RENEW_DAYS"); v != "" && !cmd.Flags().Changed("cert-renew-days") {
		n, err := strconv.Atoi(v)
		if err != nil {
			return o, fmt.Errorf("KUBESEED_CERT_RENEW_DAYS=%q is not a whole number of days", v)
		}
		days = n
	}
	for _, d := range []struct {
		flag, env string
		into      *time.Duration
	}{
		{"cert-check-interval", "KUBESEED_CERT_CHECK_INTERVAL", &o.CheckInterval},
		{"host-ip-poll-interval", "KUBESEED_HOST_IP_POLL_INTERVAL", &o.IPPollInterval},
	} {
		if v := os.Getenv(d.env); v != "" && !cmd.Flags().Changed(d.flag) {
			dur, err := time.ParseDuration(v)
			if err != nil {
				return o, fmt.Errorf("%s=%q: %w", d.env, v, err)
			}
			*d.into = dur
		}
	}
	if days < 1 || days > 3650 {
		return o, fmt.Errorf("--cert-renew-days %d is out of range (1 to 3650)", days)
	}
	o.RenewBefore = time.Duration(days) * 24 * time.Hour
	return o, o.Validate()
}
