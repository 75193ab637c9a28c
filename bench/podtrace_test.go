package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

const tracesText = `File: kubeseed
Type: cpu
Duration: 40s, Total samples = 60ms (0.15%)
-----------+-------------------------------------------------------
      20ms   runtime.memmove
             go.etcd.io/etcd/server/v3/etcdserver.(*EtcdServer).apply
             go.etcd.io/etcd/server/v3/etcdserver.(*EtcdServer).run
-----------+-------------------------------------------------------
      10ms   syscall.Syscall
             k8s.io/client-go/tools/cache.(*Reflector).ListAndWatch
             k8s.io/kubernetes/pkg/kubelet.(*Kubelet).Run
-----------+-------------------------------------------------------
      10ms   runtime.scanobject
             runtime.gcBgMarkWorker
-----------+-------------------------------------------------------
      20ms   crypto/tls.(*Conn).Read
             net/http.(*conn).serve
-----------+-------------------------------------------------------
`

func TestSumTraces(t *testing.T) {
	sums, total := sumTraces(tracesText, components)
	want := map[string]time.Duration{
		"etcd":                 20 * time.Millisecond,
		"kubelet":              10 * time.Millisecond, // the root frame wins over client-go
		"Go garbage collector": 10 * time.Millisecond,
		otherComponent:         20 * time.Millisecond,
	}
	if total != 60*time.Millisecond {
		t.Errorf("total = %v, want 60ms", total)
	}
	if len(sums) != len(want) {
		t.Errorf("sums = %v, want %v", sums, want)
	}
	for k, v := range want {
		if sums[k] != v {
			t.Errorf("sums[%q] = %v, want %v", k, sums[k], v)
		}
	}
}

func TestPct(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Second)
	}
	m := pct("x", d)
	if m.p50 != 51*time.Second || m.p99 != 99*time.Second {
		t.Errorf("pct = %v / %v, want 51s / 99s", m.p50, m.p99)
	}
	if m := pct("empty", nil); m.p50 != 0 || m.p99 != 0 {
		t.Errorf("pct(empty) = %+v", m)
	}
}

func TestReplaceSection(t *testing.T) {
	tests := []struct{ name, before, want string }{
		{"added at the end", "# B\n\n| t |\n", "# B\n\n| t |\n\n## S\n\nbody\n"},
		{"replaced, later sections kept", "# B\n\n## S\n\nold\n\n## T\n\nkeep\n", "# B\n\n## S\n\nbody\n\n## T\n\nkeep\n"},
		{"replaced at the end", "# B\n\n## S\n\nold\nlines\n", "# B\n\n## S\n\nbody\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b.md")
			if err := os.WriteFile(path, []byte(tt.before), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := replaceSection(path, "S", "body\n"); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
