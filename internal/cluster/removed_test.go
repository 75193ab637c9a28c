package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/kubeseed/kubeseed/internal/testutil/etcdtest"
)

func TestRemovedNodes(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := NewRemovedNodes(cli)
	if err := r.Add(ctx, "early", time.Now()); err != nil {
		t.Fatal(err)
	}
	set := NewRemovedSet()
	followCtx, stop := context.WithCancel(ctx)
	defer stop()
	go r.Follow(followCtx, set)
	select {
	case <-set.Synced():
	case <-ctx.Done():
		t.Fatal("never synced")
	}
	if !set.Contains("early") || set.Contains("late") {
		t.Fatalf("after the list: early %v late %v", set.Contains("early"), set.Contains("late"))
	}
	eventually := func(name string, want bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if set.Contains(name) == want {
				return
			}
		}
		t.Fatalf("Contains(%s) never became %v", name, want)
	}
	if err := r.Add(ctx, "late", time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually("late", true)
	if err := r.Forget(ctx, "early"); err != nil {
		t.Fatal(err)
	}
	eventually("early", false)
	for name, want := range map[string]bool{"late": true, "early": false, "never": false} {
		if got, err := r.Has(ctx, name); err != nil || got != want {
			t.Errorf("Has(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
}
