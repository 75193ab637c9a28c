package args

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/compatibility"
	logsapi "k8s.io/component-base/logs/api/v1"
)

// upstreamFlags is every flag a component's options get from upstream's
// process-wide registries, plus one of its own.
func upstreamFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	compatibility.NewComponentGlobalsRegistry().AddFlags(fs)
	logsapi.AddFlags(logsapi.NewLoggingConfiguration(), fs)
	fs.Int("secure-port", 0, "")
	return fs
}

func TestProcessWideFlagsMatchUpstream(t *testing.T) {
	var got []string
	upstreamFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "secure-port" {
			got = append(got, f.Name)
		}
	})
	listed := slices.Concat(featureGateFlags, loggingFlags)
	for _, name := range got {
		if !slices.Contains(listed, name) {
			t.Errorf("upstream registers --%s, which the lists miss", name)
		}
	}
	// Upstream adds these only with the json log format, which kubeseed
	// does not link; listed so that linking it cannot open a hole.
	jsonOnly := []string{"log-json-split-stream", "log-json-info-buffer-size"}
	for _, name := range listed {
		if !slices.Contains(got, name) && !slices.Contains(jsonOnly, name) {
			t.Errorf("the lists hold --%s, which upstream no longer registers", name)
		}
	}
}

func TestApplyPFlagsRefusesProcessWide(t *testing.T) {
	const gates = "feature gates are process-wide: set them in args/kube-apiserver"
	const logging = "logging is process-wide: set it in args/kube-apiserver"
	for _, tt := range []struct {
		line string
		want string // after "PATH:2: "; "" to accept
	}{
		{"--secure-port=1", ""},
		{"--feature-gates=AllAlpha=true", "--feature-gates: " + gates},
		{"--feature_gates=AllAlpha=true", "--feature_gates: " + gates},
		{"--emulated-version=1.36", "--emulated-version: " + gates},
		{"--min-compatibility-version=1.36", "--min-compatibility-version: " + gates},
		{"--v=4", "--v: " + logging},
		{"--vmodule=foo=2", "--vmodule: " + logging},
		{"--logging-format=json", "--logging-format: " + logging},
		{"--log-flush-frequency=1s", "--log-flush-frequency: " + logging},
		{"--log-text-split-stream", "--log-text-split-stream: " + logging},
		{"--log-text-info-buffer-size=1Ki", "--log-text-info-buffer-size: " + logging},
	} {
		t.Run(tt.line, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kube-scheduler")
			if err := os.WriteFile(path, []byte("# c\n"+tt.line+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			// The owner's file applies them.
			if err := ApplyPFlags(path, nil, "kube-apiserver", upstreamFlags(), nil); err != nil {
				t.Fatalf("owner: %v", err)
			}
			err := ApplyPFlags(path, nil, "kube-scheduler", upstreamFlags(), RefuseProcessWide("kube-apiserver"))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if want := path + ":2: " + tt.want; err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant  %s", err, want)
			}
		})
	}
}

func TestRefuseProcessWideKeepsOtherLogFlags(t *testing.T) {
	// containerd's own --log-level is no klog flag.
	if err := RefuseProcessWide("kube-apiserver")("log-level"); err != nil {
		t.Fatal(err)
	}
	if err := RefuseProcessWide("kube-apiserver")("v"); err == nil || !strings.Contains(err.Error(), "logging is process-wide") {
		t.Fatalf("--v: %v", err)
	}
}
