package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/authwebhook"
	"github.com/kubeseed/kubeseed/internal/credentials"
	"github.com/kubeseed/kubeseed/internal/daemon"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
)

func newTokenCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Add, list and remove static tokens (credentials/known_tokens.csv)",
		Long: "Static bearer tokens, in credentials/known_tokens.csv (MicroK8s format: token,user,uid,\"groups\").\n" +
			"Changes take effect on the running node within seconds: kube-apiserver asks kubeseed's token\n" +
			"webhook, which reloads the file. Nothing needs restarting.",
	}
	cmd.AddCommand(newTokenAddCommand(g), newTokenListCommand(g), newTokenRemoveCommand(g))
	return cmd
}

func newTokenAddCommand(g *globalOptions) *cobra.Command {
	var groups []string
	cmd := &cobra.Command{
		Use:   "add USER [--group GROUP]...",
		Short: "Give USER a new random token and print it (once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			user := argv[0]
			if err := credentials.ValidateUserName("USER", user); err != nil {
				return err
			}
			if err := credentials.ValidateGroups("--group", groups); err != nil {
				return err
			}
			l, err := g.layout()
			if err != nil {
				return err
			}
			warnMasters(cmd, user, groups)
			tok, err := credentials.TokenFile{Path: l.TokenFile()}.Add(user, groups)
			if err != nil {
				return err
			}
			when := "when kubeseed starts"
			if pid, _ := daemon.RunningPID(l); pid != 0 {
				// Wait until the webhook has it: a token tried too early
				// would be cached as invalid by kube-apiserver.
				if err := waitForTokens(cmd, l, []string{tok}, true); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: the token is in the file but the running node has not loaded it yet: %v; see the kubeseed log\n", err)
				} else {
					when = "now"
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "added a token for %s (groups: %s) to %s; it is active %s.\n"+
				"It is printed below this once; use it as a bearer token (kubectl --token=...).\n",
				user, groupList(groups), l.TokenFile(), when)
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&groups, "group", nil, "a group of the user; repeat for several")
	return cmd
}

func newTokenListCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the users that have tokens, with their groups (never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			tokens, err := credentials.TokenFile{Path: l.TokenFile()}.Load()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tUID\tGROUPS\tTOKENS")
			// One row per user, uid and groups, with how many tokens they have.
			type key struct{ user, uid, groups string }
			var order []key
			count := map[key]int{}
			for _, t := range tokens {
				k := key{t.User, t.UID, groupList(t.Groups)}
				if count[k] == 0 {
					order = append(order, k)
				}
				count[k]++
			}
			for _, k := range order {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", k.user, k.uid, k.groups, count[k])
			}
			return tw.Flush()
		},
	}
}

func newTokenRemoveCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove USER",
		Short: "Delete every token of USER",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			l, err := g.layout()
			if err != nil {
				return err
			}
			removed, err := credentials.TokenFile{Path: l.TokenFile()}.Remove(argv[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d token(s) of %s from %s\n", len(removed), argv[0], l.TokenFile())
			if pid, _ := daemon.RunningPID(l); pid != 0 {
				// The file may keep only digests, which cannot be presented
				// as tokens: wait until the webhook uses the file written.
				data, err := os.ReadFile(l.TokenFile())
				if err != nil {
					return err
				}
				if err := waitForReload(cmd, l, sha256.Sum256(data)); err != nil {
					return fmt.Errorf("the tokens are gone from the file, but the running node still accepts them: %w; see the kubeseed log", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "requests with them are refused (401) within %s: kube-apiserver caches token answers that long\n", defaults.TokenWebhookCacheTTL)
			}
			return nil
		},
	}
}

// webhookClient talks to the running node's auth webhook, which reloads
// the token file within a second of a change.
func webhookClient(l datadir.Layout) (*authwebhook.Client, error) {
	return authwebhook.NodeClient(l)
}

// waitForTokens waits until the running node's auth webhook accepts (or
// refuses) every token.
func waitForTokens(cmd *cobra.Command, l datadir.Layout, tokens []string, accepted bool) error {
	c, err := webhookClient(l)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
	defer cancel()
	return c.WaitFor(ctx, tokens, accepted)
}

// waitForReload waits until the running node's auth webhook uses the token
// file content with the given digest.
func waitForReload(cmd *cobra.Command, l datadir.Layout, digest [sha256.Size]byte) error {
	c, err := webhookClient(l)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
	defer cancel()
	return c.WaitLoaded(ctx, digest)
}

func groupList(groups []string) string {
	if len(groups) == 0 {
		return "-"
	}
	return strings.Join(groups, ",")
}

// warnMasters says plainly what system:masters means.
func warnMasters(cmd *cobra.Command, user string, groups []string) {
	for _, grp := range groups {
		if grp == credentials.MastersGroup {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is in %s, which bypasses authorization: full access to the cluster, even with RBAC enabled\n", user, credentials.MastersGroup)
		}
	}
	if strings.HasPrefix(user, "system:") {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: user names starting with \"system:\" are reserved for Kubernetes components; %s will act with that component's permissions\n", user)
	}
}
