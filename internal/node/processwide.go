package node

import (
	"fmt"
	"maps"
	"slices"

	"go.yaml.in/yaml/v3"
	"k8s.io/component-base/featuregate"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/defaults"
)

// checkProcessWide refuses what a component's config file (kubelet.yaml,
// kube-proxy's --config) cannot set for that component alone, as the
// process has one of each: featureGates that would change the process's
// gates, and logging, which kubeseed takes from args/kube-apiserver only
// (the kubelet and kube-proxy would ignore it). gates is the process's
// feature gate, which the apiserver's Init has set by now. Errors name the
// file and line.
func checkProcessWide(path string, data []byte, gates featuregate.MutableFeatureGate) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil // the config loader reports what is wrong
	}
	m := doc.Content[0].Content
	for i := 0; i+1 < len(m); i += 2 {
		key, val := m[i], m[i+1]
		switch key.Value {
		case "featureGates":
			var want map[string]bool
			if err := val.Decode(&want); err != nil {
				return fmt.Errorf("%s:%d: featureGates: %w", path, key.Line, err)
			}
			if err := sameGates(want, gates); err != nil {
				return fmt.Errorf("%s:%d: featureGates: %w", path, key.Line, err)
			}
		case "logging":
			if len(val.Content) > 0 || val.Kind == yaml.ScalarNode && val.Tag != "!!null" {
				return fmt.Errorf("%s:%d: logging: %w", path, key.Line, args.LoggingError(defaults.APIServerComponent))
			}
		}
	}
	return nil
}

// sameGates accepts gates only if setting them would change nothing.
func sameGates(want map[string]bool, gates featuregate.MutableFeatureGate) error {
	known := gates.GetAll()
	for _, name := range slices.Sorted(maps.Keys(want)) {
		f := featuregate.Feature(name)
		if _, ok := known[f]; !ok {
			return fmt.Errorf("unrecognized feature gate %q", name)
		}
		if got := gates.Enabled(f); got != want[name] {
			return fmt.Errorf("%w (%s: %v here, %v in the process)", args.FeatureGatesError(defaults.APIServerComponent), name, want[name], got)
		}
	}
	return nil
}
