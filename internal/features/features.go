// Package features is the registry behind `kubeseed enable` and `kubeseed
// disable`: named features that switch something on the node, each with a
// status. rbac is the first; later features plug in the same way.
package features

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kubeseed/kubeseed/internal/datadir"
)

// Node is what a feature acts on.
type Node struct {
	Layout datadir.Layout
	// Running is true when kubeseed runs on Layout: a feature then applies
	// its change to the running node, not only to the files.
	Running bool
	// Out receives messages for the user; Progress one-line updates during
	// long waits.
	Out      io.Writer
	Progress func(string)
}

// Status is a feature's state on a node.
type Status struct {
	Enabled bool
	Detail  string // one line, e.g. "authorization: Node,RBAC"
}

// Feature is one thing `kubeseed enable/disable` switches. Enable and
// Disable are called only when the feature is in the other state, and must
// either complete or leave the node as it was.
type Feature interface {
	Name() string
	Description() string
	Status(n Node) (Status, error)
	Enable(ctx context.Context, n Node) error
	Disable(ctx context.Context, n Node) error
}

// Configurable is a feature that takes options on enable (flag name →
// value), e.g. dns --upstream. EnableWith is called in either state, so
// options can change an enabled feature; it validates every option before
// it changes anything.
type Configurable interface {
	Feature
	Options() []string
	EnableWith(ctx context.Context, n Node, opts map[string]string) error
}

// Registry is a set of features by name.
type Registry struct {
	byName map[string]Feature
}

// NewRegistry returns a registry of the given features.
func NewRegistry(fs ...Feature) *Registry {
	r := &Registry{byName: map[string]Feature{}}
	for _, f := range fs {
		r.byName[f.Name()] = f
	}
	return r
}

// Default is every feature kubeseed has.
func Default() *Registry {
	return NewRegistry(NewRBAC(), NewDNS())
}

// Names lists the features, sorted.
func (r *Registry) Names() []string {
	var out []string
	for n := range r.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the named feature.
func (r *Registry) Lookup(name string) (Feature, error) {
	f, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("unknown feature %q; available: %s", name, strings.Join(r.Names(), ", "))
	}
	return f, nil
}

// Enable switches the named feature on; if it is on already, it says so
// and changes nothing.
func (r *Registry) Enable(ctx context.Context, name string, n Node) error {
	return r.set(ctx, name, n, true)
}

// EnableWith enables the named feature with options; with none it is
// Enable. A feature that takes no options, or not these, refuses them.
func (r *Registry) EnableWith(ctx context.Context, name string, n Node, opts map[string]string) error {
	if len(opts) == 0 {
		return r.Enable(ctx, name, n)
	}
	f, err := r.Lookup(name)
	if err != nil {
		return err
	}
	cf, ok := f.(Configurable)
	if !ok {
		return fmt.Errorf("%s takes no options", name)
	}
	for k := range opts {
		if !contains(cf.Options(), k) {
			return fmt.Errorf("%s has no option --%s (it takes: --%s)", name, k, strings.Join(cf.Options(), ", --"))
		}
	}
	if n.Progress == nil {
		n.Progress = func(string) {}
	}
	if n.Out == nil {
		n.Out = io.Discard
	}
	if err := cf.EnableWith(ctx, n, opts); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Disable switches the named feature off; if it is off already, it says so
// and changes nothing.
func (r *Registry) Disable(ctx context.Context, name string, n Node) error {
	return r.set(ctx, name, n, false)
}

func (r *Registry) set(ctx context.Context, name string, n Node, on bool) error {
	f, err := r.Lookup(name)
	if err != nil {
		return err
	}
	if n.Progress == nil {
		n.Progress = func(string) {}
	}
	if n.Out == nil {
		n.Out = io.Discard
	}
	st, err := f.Status(n)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if st.Enabled == on {
		state := "disabled"
		if on {
			state = "enabled"
		}
		fmt.Fprintf(n.Out, "%s is already %s (%s); nothing to do\n", name, state, st.Detail)
		return nil
	}
	if on {
		err = f.Enable(ctx, n)
	} else {
		err = f.Disable(ctx, n)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Describe lists every feature with its state, one per line.
func (r *Registry) Describe(n Node) string {
	var b strings.Builder
	for _, name := range r.Names() {
		f := r.byName[name]
		state := "unknown"
		if st, err := f.Status(n); err != nil {
			state = "unknown: " + err.Error()
		} else if st.Enabled {
			state = "enabled"
		} else {
			state = "disabled"
		}
		fmt.Fprintf(&b, "  %-8s %-9s %s\n", name, state, f.Description())
	}
	return b.String()
}
