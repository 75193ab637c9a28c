// Package controlplane runs kube-apiserver, kube-controller-manager and
// kube-scheduler in this process, configured from their args files.
package controlplane

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
	cliflag "k8s.io/component-base/cli/flag"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
)

// flagSet merges an upstream component's named flag sets, as its own
// command would.
func flagSet(component string, named cliflag.NamedFlagSets) *pflag.FlagSet {
	fs := pflag.NewFlagSet(component, pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	for _, f := range named.FlagSets {
		fs.AddFlagSet(f)
	}
	return fs
}

// applyArgs loads args/<component> and sets each flag on fs, so an unknown
// flag or a bad value is reported with the file and line.
func applyArgs(l datadir.Layout, component string, fs *pflag.FlagSet) error {
	f, err := args.Load(l.Args(component))
	if err != nil {
		return err
	}
	return f.Apply(l.Vars(), func(name, value string, hasValue bool) error {
		fl := fs.Lookup(name)
		if fl == nil {
			return fmt.Errorf("unknown flag for %s", component)
		}
		if fl.Deprecated != "" {
			return fmt.Errorf("deprecated upstream: %s", fl.Deprecated)
		}
		if !hasValue {
			if fl.NoOptDefVal == "" {
				return errors.New("needs a value")
			}
			value = fl.NoOptDefVal
		}
		return fs.Set(name, value)
	})
}
