package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/certrenew"
	"github.com/kubeseed/kubeseed/internal/daemon"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/netconf"
	"github.com/kubeseed/kubeseed/internal/pki"
)

func newRefreshCertsCommand(g *globalOptions) *cobra.Command {
	var (
		certName string
		check    bool
		undo     bool
		days     int
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "refresh-certs [CA_DIR] [--cert NAME | --check | --undo]",
		Short: "Issue certificates again, check their expiry, install your own CA, or undo the last refresh",
		Long: `Issue certificates again, check their expiry, install your own CA, or undo the last refresh.

  refresh-certs --cert server.crt    new server certificate, same key; SANs from
                                     certs/csr.conf.template and the host's IPs
  refresh-certs --cert ca.crt        new cluster CA; every certificate it signs is
                                     issued again with a new key and every
                                     kubeconfig under credentials/ (users/
                                     included) rewritten (node must be stopped)
  refresh-certs CA_DIR               install CA_DIR/ca.crt and CA_DIR/ca.key as the
                                     cluster CA, then as --cert ca.crt
  refresh-certs --check              each certificate's expiry; fails if one has
                                     fewer than --days days left
  refresh-certs --undo               restore the files the last refresh replaced

Whatever is replaced is first saved under certs-backup/. A leaf certificate
refresh needs no restart: the running components re-read the files.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			modes := 0
			for _, on := range []bool{certName != "", check, undo, len(args) == 1} {
				if on {
					modes++
				}
			}
			if modes != 1 {
				return fmt.Errorf("give exactly one of --cert NAME, --check, --undo or a CA_DIR (see `kubeseed refresh-certs --help`)")
			}
			l, err := g.layout()
			if err != nil {
				return err
			}
			netw, err := netconf.Read(l)
			if err != nil {
				return err
			}
			afterOp, err := g.faultHook()
			if err != nil {
				return err
			}
			now, err := g.clock()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			progress := func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), "kubeseed:", msg) }
			m := pki.Manager{
				Layout:  l,
				Vars:    bootstrap.TemplateVars(netw),
				HostIPs: hostinfo.HostIPs,
				Running: func() (int, error) { return daemon.RunningPID(l) },
				AfterOp: afterOp,
			}
			ctx := cmd.Context()
			switch {
			case check:
				return checkCerts(ctx, out, m, now, days)
			case undo:
				res, err := m.Undo(ctx)
				if err != nil {
					return err
				}
				report(out, l, res, "restored")
				return waitServed(ctx, l, res, timeout, progress, out)
			case len(args) == 1:
				dir := args[0]
				if st, err := os.Stat(dir); err != nil || !st.IsDir() {
					return fmt.Errorf("CA_DIR %q is not a directory holding ca.crt and ca.key", dir)
				}
				res, err := m.InstallCA(ctx, dir)
				if err != nil {
					return err
				}
				report(out, l, res, "installed")
				return nil
			default:
				res, err := m.RefreshCert(ctx, certName)
				if err != nil {
					return err
				}
				report(out, l, res, "issued")
				return waitServed(ctx, l, res, timeout, progress, out)
			}
		},
	}
	cmd.Flags().StringVar(&certName, "cert", "", "the certificate to issue again, e.g. server.crt, front-proxy-client.crt or ca.crt")
	cmd.Flags().BoolVar(&check, "check", false, "list every certificate's expiry; exit 1 if one has fewer than --days days left")
	cmd.Flags().BoolVar(&undo, "undo", false, "restore the files the last refresh replaced, from certs-backup/")
	cmd.Flags().IntVar(&days, "days", 30, "with --check: the fewest days left that pass")
	cmd.Flags().DurationVar(&timeout, "timeout", 90*time.Second, "how long to wait for a running node to serve a new certificate")
	return cmd
}

func checkCerts(ctx context.Context, w io.Writer, m pki.Manager, now time.Time, days int) error {
	if days < 0 {
		return fmt.Errorf("--days %d is negative", days)
	}
	// Reading is safe only once an interrupted refresh is settled.
	what, err := m.Recover(ctx)
	if err != nil {
		return err
	}
	if what != "" {
		fmt.Fprintf(w, "an interrupted certificate refresh was %s first\n", what)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tSIGNED BY\tEXPIRES\tDAYS LEFT")
	var failing []string
	for _, e := range m.Expiries() {
		signer := e.CA
		if signer == "" {
			signer = "(self, CA)"
		}
		if e.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t%v\n", e.Name, signer, e.Err)
			failing = append(failing, e.Name+" (unreadable)")
			continue
		}
		left := e.DaysLeft(now)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", e.Name, signer, e.NotAfter.UTC().Format("2006-01-02 15:04 MST"), left)
		if e.NotAfter.Sub(now) < time.Duration(days)*24*time.Hour {
			failing = append(failing, fmt.Sprintf("%s (%d days)", e.Name, left))
		}
	}
	tw.Flush()
	if len(failing) > 0 {
		return fmt.Errorf("%d certificates have fewer than %d days left: %s; a running node renews leaf certificates by itself, or run `kubeseed refresh-certs --cert NAME` (a CA needs the node stopped)",
			len(failing), days, strings.Join(failing, ", "))
	}
	fmt.Fprintf(w, "every certificate has at least %d days left\n", days)
	return nil
}

func report(w io.Writer, l datadir.Layout, res *pki.Result, verb string) {
	if res.Recovered != "" {
		fmt.Fprintf(w, "an interrupted certificate refresh was %s first\n", res.Recovered)
	}
	for _, msg := range res.Warnings {
		fmt.Fprintln(w, msg)
	}
	if res.Backup != "" {
		fmt.Fprintf(w, "saved the %d files it replaces to %s (undo with `kubeseed refresh-certs --undo`)\n", len(res.Files), res.Backup)
	}
	for _, name := range res.Issued {
		c := res.New[name]
		sans := append([]string{}, c.DNSNames...)
		for _, ip := range c.IPAddresses {
			sans = append(sans, ip.String())
		}
		line := fmt.Sprintf("%s %s.crt: serial %x, expires %s", verb, name, c.SerialNumber, c.NotAfter.UTC().Format("2006-01-02"))
		if len(sans) > 0 {
			line += ", SANs " + strings.Join(sans, ", ")
		}
		fmt.Fprintln(w, line)
	}
	var kubeconfigs []string
	for _, f := range res.Files {
		if rel, err := filepath.Rel(l.CredentialsDir(), f); err == nil && !strings.HasPrefix(rel, "..") {
			kubeconfigs = append(kubeconfigs, rel) // users/NAME.config too
		}
	}
	if len(kubeconfigs) > 0 {
		fmt.Fprintf(w, "rewrote %s under %s; copies of these files elsewhere must be replaced\n", strings.Join(kubeconfigs, ", "), l.CredentialsDir())
	}
	for _, name := range res.Issued {
		if spec, ok := pki.Lookup(name); ok && spec.IsCA() {
			fmt.Fprintln(w, "the CA changed: start the node with `kubeseed start`")
			break
		}
	}
}

// waitServed waits, on a running node, until the services serve what was
// just written, so the command ends when the change is live.
func waitServed(ctx context.Context, l datadir.Layout, res *pki.Result, timeout time.Duration, progress func(string), w io.Writer) error {
	pid, err := daemon.RunningPID(l)
	if err != nil || pid == 0 || len(res.Issued) == 0 {
		return err
	}
	took, err := certrenew.WaitServed(ctx, l, res.Old, res.New, timeout, progress)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "the running node (pid %d) serves the new certificates after %s, without a restart\n", pid, took.Round(time.Millisecond))
	return nil
}

// faultHook is the fault-injection hook for tests: with --test-hooks and
// KUBESEED_FAULT_AFTER_WRITES=N the process kills itself (SIGKILL, no
// clean-up) right after the N-th file operation of a certificate change.
func (g *globalOptions) faultHook() (func() error, error) {
	v, err := g.testHookEnv("KUBESEED_FAULT_AFTER_WRITES")
	if err != nil || v == "" {
		return nil, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("KUBESEED_FAULT_AFTER_WRITES=%q is not a positive whole number", v)
	}
	count := 0
	return func() error {
		count++
		if count == n {
			fmt.Fprintf(os.Stderr, "kubeseed: KUBESEED_FAULT_AFTER_WRITES=%d: killing myself after file operation %d\n", n, count)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
		return nil
	}, nil
}

// clock is the time `refresh-certs --check` and `status` measure against:
// now, or with --test-hooks KUBESEED_TEST_NOW (RFC 3339).
func (g *globalOptions) clock() (time.Time, error) {
	v, err := g.testHookEnv("KUBESEED_TEST_NOW")
	if err != nil {
		return time.Time{}, err
	}
	if v == "" {
		return time.Now(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("KUBESEED_TEST_NOW=%q: %w", v, err)
	}
	return t, nil
}
