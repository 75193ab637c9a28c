// Package controlplane runs kube-apiserver, kube-controller-manager and
// kube-scheduler in this process, configured from their args files.
package controlplane

import (
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

// applyArgs sets the flags of args/<component> on fs.
func applyArgs(l datadir.Layout, component string, fs *pflag.FlagSet) error {
	return args.ApplyPFlags(l.Args(component), l.Vars(), component, fs)
}
