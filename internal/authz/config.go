// Package authz manages kube-apiserver's authorization: the structured
// authorization config that `kubeseed enable/disable rbac` switches, and the
// cluster RBAC objects kubeseed's own identities need.
//
// kube-apiserver reloads --authorization-config when the file changes, with
// two rules (k8s.io/kubernetes/pkg/kubeapiserver/authorizer/reload.go):
// Node and RBAC may appear after a reload only if they were in the config it
// started with, and every non-webhook type it started with must stay in
// every later config. So kubeseed always starts the apiserver with Node and
// RBAC in the chain, and while it runs writes "live" chains that keep every
// type it may have started with. An AlwaysAllow entry therefore stays in
// the RBAC chain until the next start, behind a webhook that denies
// everything (kubeseed's own, in-process): the built-in AlwaysDeny
// authorizer cannot end a chain, since it answers "no opinion".
package authz

import (
	"fmt"
	"strings"

	"k8s.io/apiserver/pkg/apis/apiserver/load"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	kubeauthorizer "k8s.io/kubernetes/pkg/kubeapiserver/authorizer"
)

// ConfigFile is the structured authorization config under config/.
const ConfigFile = "authorization.yaml"

// Mode is an authorization mode kubeseed switches between.
type Mode string

const (
	// AlwaysAllow authorizes every authenticated request (MicroK8s's default).
	AlwaysAllow Mode = "AlwaysAllow"
	// RBAC is the Node and RBAC authorizers (`kubeseed enable rbac`).
	RBAC Mode = "RBAC"
)

// Authorizer types, as kube-apiserver names them.
const (
	typeAlwaysAllow = "AlwaysAllow"
	typeAlwaysDeny  = "AlwaysDeny"
	typeNode        = "Node"
	typeRBAC        = "RBAC"
	typeWebhook     = "Webhook"
)

// DenyWebhookName names the webhook authorizer that ends a live RBAC
// chain. kubeseed's auth webhook denies every request it is asked about.
const DenyWebhookName = "kubeseed-deny"

// RemovedNodesWebhookName names the webhook authorizer at the head of every
// chain: asked only about requests of group system:nodes, it denies the
// nodes `kubeseed remove-node` removed (their certificates stay valid
// until they expire) and has no opinion on the rest. It allows nothing, so
// it never changes the mode.
const RemovedNodesWebhookName = "kubeseed-removed-nodes"

// Webhooks are kube-apiserver's kubeconfigs (absolute paths) for
// kubeseed's authorization webhooks.
type Webhooks struct {
	Deny, RemovedNodes string
}

// chains are the authorizer types of each rendering, in order.
//
// At start: AlwaysAllow keeps Node and RBAC behind it (never reached) so
// they exist for a later switch. RBAC is just Node and RBAC.
//
// Live (written while kube-apiserver runs): valid whichever start chain the
// apiserver began with. The AlwaysAllow start chain already is; the RBAC
// one must keep AlwaysAllow, so the deny webhook ends the chain before it.
// The next start writes the start chain again.
var chains = map[Mode]map[bool][]string{
	AlwaysAllow: {
		false: {typeAlwaysAllow, typeNode, typeRBAC},
		true:  {typeAlwaysAllow, typeNode, typeRBAC},
	},
	RBAC: {
		false: {typeNode, typeRBAC},
		true:  {typeNode, typeRBAC, typeWebhook, typeAlwaysAllow},
	},
}

// Render returns the config file for mode: the live chain if kube-apiserver
// is running, else the start chain, each behind the removed-nodes webhook.
func Render(m Mode, live bool, hooks Webhooks) []byte {
	var b strings.Builder
	b.WriteString("# Structured authorization config for kube-apiserver (--authorization-config).\n")
	b.WriteString("# Switch with `kubeseed enable rbac` / `kubeseed disable rbac`: kube-apiserver\n")
	b.WriteString("# reloads this file when it changes, so no restart is needed.\n")
	fmt.Fprintf(&b, "# Mode: %s\n", m)
	if live && m == RBAC {
		b.WriteString("# The kubeseed-deny webhook denies what Node and RBAC do not allow, so the\n")
		b.WriteString("# AlwaysAllow entry after it is never reached. kube-apiserver requires every\n")
		b.WriteString("# authorizer type it started with to stay; the next start of kubeseed drops it.\n")
	}
	b.WriteString("# The kubeseed-removed-nodes webhook refuses nodes removed with `kubeseed remove-node`.\n")
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n")
	// Its failure policy is NoOpinion: it runs in-process with the
	// apiserver, and a failure must not lock every node out.
	fmt.Fprintf(&b, `- type: Webhook
  name: %s
  webhook:
    timeout: 5s
    subjectAccessReviewVersion: v1
    matchConditionSubjectAccessReviewVersion: v1
    failurePolicy: NoOpinion
    authorizedTTL: 1s
    cacheAuthorizedRequests: false
    unauthorizedTTL: 10s
    cacheUnauthorizedRequests: true
    connectionInfo:
      type: KubeConfigFile
      kubeConfigFile: %q
    matchConditions:
    - expression: "'system:nodes' in request.groups"
`, RemovedNodesWebhookName, hooks.RemovedNodes)
	for _, t := range chains[m][live] {
		if t == typeWebhook {
			fmt.Fprintf(&b, `- type: Webhook
  name: %s
  webhook:
    timeout: 5s
    subjectAccessReviewVersion: v1
    matchConditionSubjectAccessReviewVersion: v1
    failurePolicy: Deny
    authorizedTTL: 1s
    cacheAuthorizedRequests: false
    unauthorizedTTL: 1m
    cacheUnauthorizedRequests: true
    connectionInfo:
      type: KubeConfigFile
      kubeConfigFile: %q
`, DenyWebhookName, hooks.Deny)
			continue
		}
		fmt.Fprintf(&b, "- type: %s\n  name: %s\n", t, strings.ToLower(t))
	}
	return []byte(b.String())
}

// StartForm returns the start chain for a live RBAC chain, and for a chain
// of kubeseed's without the removed-nodes webhook (an older kubeseed's),
// and false for anything else (the file is then left alone). It does not
// validate: the webhooks' kubeconfigs may not exist yet.
func StartForm(data []byte, hooks Webhooks) ([]byte, bool) {
	cfg, err := load.LoadFromData(data)
	if err != nil {
		return nil, false
	}
	var c Chain
	for _, a := range cfg.Authorizers {
		c.Types = append(c.Types, string(a.Type))
		c.Names = append(c.Names, a.Name)
	}
	guarded := len(c.Names) > 0 && c.Names[0] == RemovedNodesWebhookName
	inner := c.withoutGuard()
	m, ok := inner.Mode()
	if !ok {
		return nil, false
	}
	for live, want := range chains[m] {
		same := strings.Join(inner.Types, ",") == strings.Join(want, ",")
		// AlwaysAllow's live chain is its start chain.
		if same && (!guarded || live && m == RBAC) {
			return Render(m, false, hooks), true
		}
	}
	return nil, false
}

// withoutGuard is c without its removed-nodes webhooks, which allow
// nothing and so leave the mode as the rest of the chain makes it.
func (c Chain) withoutGuard() Chain {
	var out Chain
	for i := range c.Types {
		if c.Types[i] == typeWebhook && c.Names[i] == RemovedNodesWebhookName {
			continue
		}
		out.Types = append(out.Types, c.Types[i])
		out.Names = append(out.Names, c.Names[i])
	}
	return out
}

// Chain is a parsed and validated authorization config.
type Chain struct {
	Types []string // authorizer types in order
	Names []string
}

// Parse validates data exactly as kube-apiserver does; path is for errors.
func Parse(path string, data []byte) (Chain, error) {
	cfg, err := kubeauthorizer.LoadAndValidateData(data, authorizationcel.NewDefaultCompiler(), nil)
	if err != nil {
		return Chain{}, fmt.Errorf("%s: %w", path, err)
	}
	var c Chain
	for _, a := range cfg.Authorizers {
		c.Types = append(c.Types, string(a.Type))
		c.Names = append(c.Names, a.Name)
	}
	return c, nil
}

// Effective describes what the chain does, the way --authorization-mode
// would: "AlwaysAllow" when every request reaches an AlwaysAllow entry,
// else the authorizers that can decide, e.g. "Node,RBAC". AlwaysDeny
// answers "no opinion" upstream, so it ends nothing; kubeseed's deny
// webhook ends the chain.
func (c Chain) Effective() string {
	c = c.withoutGuard()
	var decisive []string
	mayDeny := false // only a webhook may deny; the others allow or pass
	for i, t := range c.Types {
		switch t {
		case typeAlwaysAllow:
			if !mayDeny {
				return typeAlwaysAllow
			}
			return strings.Join(append(decisive, t), ",")
		case typeAlwaysDeny:
			continue
		case typeWebhook:
			if c.Names[i] == DenyWebhookName {
				if len(decisive) == 0 {
					return typeAlwaysDeny
				}
				return strings.Join(decisive, ",")
			}
			mayDeny = true
		}
		decisive = append(decisive, t)
	}
	if len(decisive) == 0 {
		return typeAlwaysDeny // nobody allows anything
	}
	return strings.Join(decisive, ",")
}

// Mode reports which of kubeseed's modes the chain is, and false for a
// chain kubeseed does not manage (a webhook, ABAC, or a hand-made order).
func (c Chain) Mode() (Mode, bool) {
	c = c.withoutGuard()
	for i, t := range c.Types {
		switch t {
		case typeAlwaysAllow, typeAlwaysDeny, typeNode, typeRBAC:
			if c.Names[i] != strings.ToLower(t) {
				return "", false
			}
		case typeWebhook:
			if c.Names[i] != DenyWebhookName {
				return "", false
			}
		default:
			return "", false
		}
	}
	switch c.Effective() {
	case typeAlwaysAllow:
		return AlwaysAllow, true
	case typeNode + "," + typeRBAC:
		return RBAC, true
	}
	return "", false
}
