package args

import (
	"fmt"
	"slices"
	"strings"
)

// The flags below set state every component in this process shares:
// upstream keeps one feature gate and compatibility registry, and one klog,
// per process. Every component's options register them, so a value in one
// component's args file would change all the others' (gates) or be
// silently ignored (logging is applied once, from the owner's file).
// TestProcessWideFlagsMatchUpstream keeps the lists in step with upstream.
var (
	// component-base/compatibility ComponentGlobalsRegistry.AddFlags
	featureGateFlags = []string{"feature-gates", "emulated-version", "min-compatibility-version"}
	// component-base/logs/api/v1 AddFlags
	loggingFlags = []string{"v", "vmodule", "logging-format", "log-flush-frequency",
		"log-text-split-stream", "log-text-info-buffer-size", "log-json-split-stream", "log-json-info-buffer-size"}
)

// FeatureGatesError is why a file other than args/<owner> may not set
// feature gates.
func FeatureGatesError(owner string) error {
	return fmt.Errorf("feature gates are process-wide: set them in args/%s", owner)
}

// LoggingError is why a file other than args/<owner> may not set logging.
func LoggingError(owner string) error {
	return fmt.Errorf("logging is process-wide: set it in args/%s", owner)
}

// RefuseProcessWide refuses the feature-gate and logging flags, which
// only args/<owner> may set.
func RefuseProcessWide(owner string) Refuse {
	return func(name string) error {
		// As upstream's flag sets normalise it: --feature_gates is --feature-gates.
		name = strings.ReplaceAll(name, "_", "-")
		switch {
		case slices.Contains(featureGateFlags, name):
			return FeatureGatesError(owner)
		case slices.Contains(loggingFlags, name):
			return LoggingError(owner)
		}
		return nil
	}
}
