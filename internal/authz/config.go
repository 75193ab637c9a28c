// Package authz manages kube-apiserver's authorization: the structured
// authorization config that `kubeseed enable/disable rbac` switches, and the
// cluster RBAC objects kubeseed's own identities need.
//
// kube-apiserver reloads --authorization-config when the file changes, with
// two rules (k8s.io/kubernetes/pkg/kubeapiserver/authorizer/reload.go):
// Node and RBAC may appear after a reload only if they were in the config it
// started with, and every non-webhook type it started with must stay in
// every later config. So kubeseed always starts the apiserver with Node and
// RBAC in the chain, and while it runs writes "live" chains that contain all
// four types it may have started with.
package authz

import (
	"fmt"
	"strings"

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
)

// chains are the authorizer types of each rendering, in order.
//
// At start: AlwaysAllow keeps Node and RBAC behind it (never reached) so
// they exist for a later switch. RBAC is just Node and RBAC.
//
// Live (written while kube-apiserver runs): a superset of both start chains,
// so the reload is accepted whichever one the apiserver started with.
// AlwaysDeny ends the RBAC chain before the AlwaysAllow entry upstream
// requires to stay. The next start writes the start chain again.
var chains = map[Mode]map[bool][]string{
	AlwaysAllow: {
		false: {typeAlwaysAllow, typeNode, typeRBAC},
		true:  {typeAlwaysAllow, typeNode, typeRBAC, typeAlwaysDeny},
	},
	RBAC: {
		false: {typeNode, typeRBAC},
		true:  {typeNode, typeRBAC, typeAlwaysDeny, typeAlwaysAllow},
	},
}

// Render returns the config file for mode: the live chain if kube-apiserver
// is running, else the start chain.
func Render(m Mode, live bool) []byte {
	var b strings.Builder
	b.WriteString("# Structured authorization config for kube-apiserver (--authorization-config).\n")
	b.WriteString("# Switch with `kubeseed enable rbac` / `kubeseed disable rbac`: kube-apiserver\n")
	b.WriteString("# reloads this file when it changes, so no restart is needed.\n")
	fmt.Fprintf(&b, "# Mode: %s\n", m)
	if live && m == RBAC {
		b.WriteString("# AlwaysDeny ends the chain: the AlwaysAllow entry after it is never reached. It is\n")
		b.WriteString("# there because kube-apiserver requires every authorizer type it started with to\n")
		b.WriteString("# stay; the next start of kubeseed drops it.\n")
	}
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n")
	for _, t := range chains[m][live] {
		fmt.Fprintf(&b, "- type: %s\n  name: %s\n", t, strings.ToLower(t))
	}
	return []byte(b.String())
}

// StartForm returns the start chain of a live chain written by kubeseed,
// and false for anything else (the file is then left alone).
func StartForm(data []byte) ([]byte, bool) {
	for _, m := range []Mode{AlwaysAllow, RBAC} {
		if string(data) == string(Render(m, true)) {
			return Render(m, false), true
		}
	}
	return nil, false
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
// else the authorizers that can decide, e.g. "Node,RBAC".
func (c Chain) Effective() string {
	var decisive []string
	mayDeny := false // only Webhook and AlwaysDeny deny; the others allow or pass
	for _, t := range c.Types {
		switch t {
		case typeAlwaysAllow:
			if !mayDeny {
				return typeAlwaysAllow
			}
			return strings.Join(append(decisive, t), ",")
		case typeAlwaysDeny:
			if len(decisive) == 0 {
				return typeAlwaysDeny
			}
			return strings.Join(decisive, ",")
		case "Webhook":
			mayDeny = true
		}
		decisive = append(decisive, t)
	}
	return strings.Join(decisive, ",")
}

// Mode reports which of kubeseed's modes the chain is, and false for a
// chain kubeseed does not manage (a webhook, ABAC, or a hand-made order).
func (c Chain) Mode() (Mode, bool) {
	for i, t := range c.Types {
		switch t {
		case typeAlwaysAllow, typeAlwaysDeny, typeNode, typeRBAC:
		default:
			return "", false
		}
		if c.Names[i] != strings.ToLower(t) {
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
