package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/credentials"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/pki"
)

// maxUserDays bounds --days: a client certificate cannot be revoked.
const maxUserDays = 3650

func newAddUserCommand(g *globalOptions) *cobra.Command {
	var (
		groups []string
		days   int
		output string
		server string
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "add-user NAME [--group GROUP]... [--days N]",
		Short: "Write a kubeconfig for NAME with a client certificate signed by the cluster CA",
		Long: "Issues a client certificate (CN=NAME, O=each group) signed by certs/ca.crt and writes a\n" +
			"kubeconfig with it to credentials/users/NAME.config (or --output). Under RBAC the user has\n" +
			"no access until bound. A certificate cannot be revoked: keep --days short.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			name := argv[0]
			if err := credentials.ValidateUserName("NAME", name); err != nil {
				return err
			}
			if err := credentials.ValidateGroups("--group", groups); err != nil {
				return err
			}
			if days < 1 || days > maxUserDays {
				return fmt.Errorf("--days %d is out of range (1 to %d)", days, maxUserDays)
			}
			l, err := g.layout()
			if err != nil {
				return err
			}
			if output == "" {
				output = l.UserKubeconfig(name)
			}
			if output != "-" && !force {
				if ok, err := fsutil.Exists(output); err != nil {
					return err
				} else if ok {
					return fmt.Errorf("%s exists; pass --force to replace it (the old certificate stays valid until it expires)", output)
				}
			}
			if server == "" {
				if server, err = defaultAPIServerURL(l); err != nil {
					return err
				}
			}
			store := pki.Store{Dir: l.CertsDir()}
			caSpec, _ := pki.Lookup("ca")
			ca, err := store.Load(caSpec)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("no cluster CA in %s (start the node once with `kubeseed start`): %w", l.CertsDir(), err)
				}
				return err
			}
			warnMasters(cmd, name, groups)
			now := time.Now()
			kp, err := pki.Issue(pki.UserSpec(name, groups, time.Duration(days)*24*time.Hour), pki.Inputs{}, ca, now)
			if err != nil {
				return err
			}
			keyPEM, err := pki.EncodeKey(kp.Key)
			if err != nil {
				return err
			}
			kc := credentials.Kubeconfig{Server: server, CAPEM: pki.EncodeCert(ca.Cert),
				CertPEM: pki.EncodeCert(kp.Cert), KeyPEM: keyPEM, User: name}
			expiry := kp.Cert.NotAfter.Format("2006-01-02")
			if kp.Cert.NotAfter.Before(now.Add(time.Duration(days) * 24 * time.Hour)) {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: the certificate expires with the cluster CA, on %s\n", expiry)
			}
			if output == "-" {
				data, err := kc.Bytes()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(data)
				return err
			}
			if err := fsutil.EnsureDir(l.UsersDir(), 0o700); err != nil {
				return err
			}
			if err := kc.Write(output); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: user %s (groups: %s), certificate valid until %s, server %s\n", output, name, groupList(groups), expiry, server)
			fmt.Fprintf(cmd.OutOrStdout(), "try: kubectl --kubeconfig %s auth whoami\n", output)
			fmt.Fprintf(cmd.OutOrStdout(), "under RBAC, grant access with e.g.: kubeseed kubectl create rolebinding %s-view --clusterrole=view --user=%s --namespace=default\n", name, name)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&groups, "group", nil, "a group of the user (the certificate's O); repeat for several")
	cmd.Flags().IntVar(&days, "days", 365, "certificate lifetime in days")
	cmd.Flags().StringVarP(&output, "output", "o", "", "where to write the kubeconfig; \"-\" prints it (default credentials/users/NAME.config)")
	cmd.Flags().StringVar(&server, "server", "", "API server URL in the kubeconfig (default https://<default IP>:<apiserver port>)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing kubeconfig")
	return cmd
}
