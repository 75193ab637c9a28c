// Package controlplane runs kube-apiserver, kube-controller-manager,
// kube-scheduler and kubeseed's auth webhook in this process, configured
// from their args files, and applies the cluster objects kubeseed needs.
// The apiserver's Init sets the process-wide feature gates and logging.
package controlplane

import (
	"github.com/spf13/pflag"
	cliflag "k8s.io/component-base/cli/flag"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
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

// applyArgs sets the flags of args/<component> on fs. Only the apiserver's
// file may set the process-wide feature gates and logging.
func applyArgs(l datadir.Layout, component string, fs *pflag.FlagSet) error {
	var refuse args.Refuse
	if component != defaults.APIServerComponent {
		refuse = args.RefuseProcessWide(defaults.APIServerComponent)
	}
	return args.ApplyPFlags(l.Args(component), l.Vars(), component, fs, refuse)
}
