package features

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kubeseed/kubeseed/internal/agent"
	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/controlplane"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// RBAC switches kube-apiserver between AlwaysAllow and Node,RBAC by
// rewriting its --authorization-config file, which kube-apiserver reloads:
// no restart, running pods untouched.
type RBAC struct {
	// Timeout bounds the wait for kube-apiserver to apply the change. Its
	// file watch reacts at once; its fallback poll runs every minute.
	Timeout time.Duration
	// Client returns an admin client for the running node.
	Client func(n Node) (kubernetes.Interface, error)
	// Publish sets the cluster's mode, which every control plane follows.
	Publish func(ctx context.Context, n Node, m authz.Mode) error
}

// NewRBAC returns the feature with its defaults.
func NewRBAC() *RBAC {
	return &RBAC{
		Timeout: 90 * time.Second,
		Client:  func(n Node) (kubernetes.Interface, error) { return controlplane.AdminClient(n.Layout) },
		Publish: func(ctx context.Context, n Node, m authz.Mode) error {
			return agent.PublishAuthorizationMode(ctx, n.Layout, m)
		},
	}
}

func (*RBAC) Name() string { return "rbac" }
func (*RBAC) Description() string {
	return "authorize with Node and RBAC instead of AlwaysAllow (system:masters keeps full access)"
}

// config is the authorization config file as args/kube-apiserver names it.
type config struct {
	apiArgs *args.File
	path    string
	data    []byte
	chain   authz.Chain
	mode    authz.Mode
}

func load(n Node) (*config, error) {
	f, err := args.Load(n.Layout.Args(defaults.APIServerComponent))
	if err != nil {
		return nil, err
	}
	path, _, ok, err := f.Lookup("authorization-config", n.Layout.Vars())
	if err != nil {
		return nil, err
	}
	if !ok {
		if _, line, ok, _ := f.Lookup("authorization-mode", nil); ok {
			return nil, fmt.Errorf("%s:%d: --authorization-mode is set: this data dir predates switching authorization at run time. Start kubeseed once (it moves the mode to --authorization-config), then run this again", f.Path, line)
		}
		return nil, fmt.Errorf("%s: no --authorization-config; kubeseed switches authorization through that file. Add --authorization-config=${DATA_DIR}/config/%s and restart kubeseed", f.Path, authz.ConfigFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	chain, err := authz.Parse(path, data)
	if err != nil {
		return nil, err
	}
	mode, managed := chain.Mode()
	if !managed {
		return nil, fmt.Errorf("%s: the authorizer chain %s is not one kubeseed switches (AlwaysAllow, or Node,RBAC); edit that file by hand, kube-apiserver reloads it", path, strings.Join(chain.Types, ","))
	}
	return &config{apiArgs: f, path: path, data: data, chain: chain, mode: mode}, nil
}

// Status reads the authorization config.
func (r *RBAC) Status(n Node) (Status, error) {
	c, err := load(n)
	if err != nil {
		return Status{}, err
	}
	return Status{Enabled: c.mode == authz.RBAC, Detail: "authorization: " + c.chain.Effective()}, nil
}

// Enable switches to Node,RBAC.
func (r *RBAC) Enable(ctx context.Context, n Node) error {
	return r.switchTo(ctx, n, authz.RBAC)
}

// Disable switches back to AlwaysAllow. NodeRestriction stays: it only
// limits what kubelets may change, and admission plugins are read at start.
func (r *RBAC) Disable(ctx context.Context, n Node) error {
	return r.switchTo(ctx, n, authz.AlwaysAllow)
}

func (r *RBAC) switchTo(ctx context.Context, n Node, want authz.Mode) error {
	c, err := load(n)
	if err != nil {
		return err
	}
	var cs kubernetes.Interface
	if n.Running {
		if cs, err = r.Client(n); err != nil {
			return err
		}
		if want == authz.RBAC {
			// Bindings kubeseed's own identities need under RBAC; each
			// start applies them too.
			if err := authz.EnsureClusterObjects(ctx, cs); err != nil {
				return fmt.Errorf("%w; is the node ready? (`kubeseed status`)", err)
			}
		}
	}
	if err := fsutil.WriteFileAtomic(c.path, authz.Render(want, n.Running, defaults.Webhooks(n.Layout)), 0o644); err != nil {
		return err
	}
	if n.Running {
		n.Progress(fmt.Sprintf("wrote %s; waiting for kube-apiserver to apply it", c.path))
		wctx, cancel := context.WithTimeout(ctx, r.Timeout)
		err := authz.WaitForMode(wctx, cs, want, n.Progress)
		cancel()
		if err != nil {
			if rerr := fsutil.WriteFileAtomic(c.path, c.data, 0o644); rerr != nil {
				return fmt.Errorf("kube-apiserver did not apply %s: %w; restoring the previous file failed too: %v", c.path, err, rerr)
			}
			return fmt.Errorf("kube-apiserver did not apply %s: %w. The previous file is restored. Look for \"reloading authorization config\" in the kubeseed log; a restart of kubeseed applies the change if the running apiserver refuses it", c.path, err)
		}
	}
	if want == authz.RBAC {
		if err := ensureNodeRestriction(c.apiArgs, n); err != nil {
			return err
		}
	}
	if n.Running && r.Publish != nil {
		// Stopped, the next start publishes it (the file changed since the
		// mode this node last agreed with the cluster).
		if err := r.Publish(ctx, n, want); err != nil {
			fmt.Fprintf(n.Out, "WARNING: this node switched, but the cluster's setting was not updated (%v): other control planes keep their mode until this node restarts\n", err)
		}
	}
	switch {
	case want == authz.RBAC && n.Running:
		fmt.Fprintln(n.Out, "RBAC enabled: kube-apiserver authorizes with Node,RBAC. system:masters keeps full access; other users need Roles and RoleBindings, e.g.\n  kubeseed kubectl create rolebinding NAME --clusterrole=view --user=USER --namespace=default")
	case want == authz.RBAC:
		fmt.Fprintf(n.Out, "RBAC will be enforced from the next start (%s updated)\n", c.path)
	case n.Running:
		fmt.Fprintln(n.Out, "RBAC disabled: kube-apiserver authorizes every authenticated request (AlwaysAllow). RBAC objects are kept and apply again after `kubeseed enable rbac`.")
	default:
		fmt.Fprintf(n.Out, "AlwaysAllow from the next start (%s updated)\n", c.path)
	}
	return nil
}

// ensureNodeRestriction adds the NodeRestriction admission plugin to
// args/kube-apiserver if a user removed it. It is on from the first start:
// admission plugins cannot be added to a running apiserver.
func ensureNodeRestriction(f *args.File, n Node) error {
	v, _ := f.Get("enable-admission-plugins")
	var plugins []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if p == "NodeRestriction" {
				return nil
			}
			plugins = append(plugins, p)
		}
	}
	f.Set("enable-admission-plugins", strings.Join(append(plugins, "NodeRestriction"), ","))
	if err := fsutil.WriteFileAtomic(f.Path, f.Bytes(), 0o644); err != nil {
		return err
	}
	if n.Running {
		fmt.Fprintf(n.Out, "added NodeRestriction to --enable-admission-plugins in %s; admission plugins are read at start: restart kubeseed to apply it\n", f.Path)
	}
	return nil
}
