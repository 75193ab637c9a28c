package controlplane

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
)

// The controller manager's and scheduler's files used to accept the
// process-wide flags: gates then applied to every component, logging to none.
func TestProcessWideFlagsOnlyInTheAPIServerFile(t *testing.T) {
	const gates = "feature gates are process-wide: set them in args/kube-apiserver"
	const logging = "logging is process-wide: set it in args/kube-apiserver"
	for _, tt := range []struct {
		component, line, want string
	}{
		{defaults.ControllerManagerComponent, "--feature-gates=AllAlpha=true", gates},
		{defaults.ControllerManagerComponent, "--emulated-version=1.36", gates},
		{defaults.ControllerManagerComponent, "--v=4", logging},
		{defaults.SchedulerComponent, "--feature-gates=AllAlpha=true", gates},
		{defaults.SchedulerComponent, "--logging-format=text", logging},
		{defaults.SchedulerComponent, "--vmodule=x=4", logging},
	} {
		t.Run(tt.component+" "+tt.line, func(t *testing.T) {
			l := datadir.Layout{Root: t.TempDir()}
			if err := os.MkdirAll(l.ArgsDir(), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(l.Args(tt.component), []byte("# flags\n"+tt.line+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var err error
			if tt.component == defaults.SchedulerComponent {
				err = NewScheduler(l).Init(context.Background())
			} else {
				err = NewControllerManager(l).Init(context.Background())
			}
			name, _, _ := strings.Cut(tt.line, "=")
			want := l.Args(tt.component) + ":2: " + name + ": " + tt.want
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant  %s", err, want)
			}
		})
	}
}
