package supervisor

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

type fake struct {
	name     string
	rec      *recorder
	initErr  error
	readyErr error
	exited   chan error
}

func newFake(name string, rec *recorder) *fake {
	return &fake{name: name, rec: rec, exited: make(chan error, 1)}
}

func (f *fake) Name() string { return f.name }
func (f *fake) Init(context.Context) error {
	f.rec.add("init " + f.name)
	return f.initErr
}
func (f *fake) Start(context.Context) error { f.rec.add("start " + f.name); return nil }
func (f *fake) Ready(context.Context) error { f.rec.add("ready " + f.name); return f.readyErr }
func (f *fake) Stop(context.Context) error  { f.rec.add("stop " + f.name); return nil }
func (f *fake) Exited() <-chan error        { return f.exited }

func TestRunOrderAndCleanStop(t *testing.T) {
	rec := &recorder{}
	a, b := newFake("a", rec), newFake("b", rec)
	ctx, cancel := context.WithCancel(context.Background())
	err := New(a, b).Run(ctx, func() { rec.add("all ready"); cancel() })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"init a", "init b", "start a", "ready a", "start b", "ready b", "all ready", "stop b", "stop a"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Fatalf("events %v\nwant   %v", got, want)
	}
}

func TestInitFailureStartsNothing(t *testing.T) {
	rec := &recorder{}
	a, b := newFake("a", rec), newFake("b", rec)
	b.initErr = errors.New("bad flag")
	err := New(a, b).Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "b: bad flag") {
		t.Fatalf("err = %v", err)
	}
	for _, e := range rec.get() {
		if strings.HasPrefix(e, "start") {
			t.Fatalf("%s after an init failure", e)
		}
	}
}

func TestReadyFailureStopsStarted(t *testing.T) {
	rec := &recorder{}
	a, b, c := newFake("a", rec), newFake("b", rec), newFake("c", rec)
	b.readyErr = errors.New("no")
	err := New(a, b, c).Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "b not ready") {
		t.Fatalf("err = %v", err)
	}
	got := rec.get()
	if slices.Contains(got, "start c") {
		t.Error("c started after b failed")
	}
	if !slices.Contains(got, "stop a") || !slices.Contains(got, "stop b") {
		t.Errorf("started components not stopped: %v", got)
	}
}

func TestComponentExitStopsTheRest(t *testing.T) {
	rec := &recorder{}
	a, b := newFake("a", rec), newFake("b", rec)
	done := make(chan error, 1)
	go func() {
		done <- New(a, b).Run(context.Background(), func() { a.exited <- errors.New("crashed") })
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "a exited: crashed") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after a component exited")
	}
	got := rec.get()
	if !slices.Contains(got, "stop a") || !slices.Contains(got, "stop b") {
		t.Errorf("not stopped: %v", got)
	}
}

// overlapped is a fake whose readiness the next components need not await.
type overlapped struct {
	*fake
	before  string
	release chan struct{}
}

func (o *overlapped) ReadyBefore() string { return o.before }
func (o *overlapped) Ready(ctx context.Context) error {
	select {
	case <-o.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return o.fake.Ready(ctx)
}

func TestOverlappedReadiness(t *testing.T) {
	rec := &recorder{}
	slow := &overlapped{fake: newFake("slow", rec), before: "c", release: make(chan struct{})}
	last := &overlapped{fake: newFake("last", rec), before: NodeReady, release: make(chan struct{})}
	a, c := newFake("a", rec), newFake("c", rec)
	ctx, cancel := context.WithCancel(context.Background())
	// b releases slow once it is started, so slow is ready only after b.
	b := &hook{fake: newFake("b", rec), onStart: func() { close(slow.release) }}
	go func() {
		// last becomes ready only after c has started.
		for !slices.Contains(rec.get(), "start c") {
			time.Sleep(time.Millisecond)
		}
		close(last.release)
	}()
	err := New(slow, a, b, last, c).Run(ctx, func() { rec.add("all ready"); cancel() })
	if err != nil {
		t.Fatal(err)
	}
	got := rec.get()
	pos := func(e string) int { return slices.Index(got, e) }
	for _, order := range [][2]string{
		{"start slow", "start a"}, {"start b", "ready slow"}, {"ready slow", "start c"},
		{"start c", "ready last"}, {"ready last", "all ready"}, {"ready c", "all ready"},
	} {
		if pos(order[0]) < 0 || pos(order[1]) < 0 || pos(order[0]) > pos(order[1]) {
			t.Errorf("want %q before %q: %v", order[0], order[1], got)
		}
	}
}

// hook runs onStart when started.
type hook struct {
	*fake
	onStart func()
}

func (h *hook) Start(ctx context.Context) error {
	err := h.fake.Start(ctx)
	h.onStart()
	return err
}

func TestOverlappedReadyFailureStops(t *testing.T) {
	rec := &recorder{}
	slow := &overlapped{fake: newFake("slow", rec), before: "b", release: make(chan struct{})}
	slow.readyErr = errors.New("no CRI")
	close(slow.release)
	a, b := newFake("a", rec), newFake("b", rec)
	err := New(slow, a, b).Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "slow not ready: no CRI") {
		t.Fatalf("err = %v", err)
	}
	if slices.Contains(rec.get(), "start b") {
		t.Errorf("b started although slow, which it needs, failed: %v", rec.get())
	}
	if !slices.Contains(rec.get(), "stop a") || !slices.Contains(rec.get(), "stop slow") {
		t.Errorf("started components not stopped: %v", rec.get())
	}
}

// plain has only the required methods: no readiness to await, no exits.
type plain struct {
	name string
	rec  *recorder
}

func (p *plain) Name() string                { return p.name }
func (p *plain) Init(context.Context) error  { p.rec.add("init " + p.name); return nil }
func (p *plain) Start(context.Context) error { p.rec.add("start " + p.name); return nil }
func (p *plain) Stop(context.Context) error  { p.rec.add("stop " + p.name); return nil }

func TestReadyAndExitedAreOptional(t *testing.T) {
	rec := &recorder{}
	a, b := &plain{name: "a", rec: rec}, newFake("b", rec)
	ctx, cancel := context.WithCancel(context.Background())
	if err := New(a, b).Run(ctx, func() { rec.add("all ready"); cancel() }); err != nil {
		t.Fatal(err)
	}
	want := []string{"init a", "init b", "start a", "start b", "ready b", "all ready", "stop b", "stop a"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Fatalf("events %v\nwant   %v", got, want)
	}
}

func TestReadyBeforeMustNameALaterComponent(t *testing.T) {
	for _, tt := range []struct {
		name, before string
		others       []string // the components after the overlapped one
		earlier      bool     // a component named "early" comes first
		want         string   // "" for no error
	}{
		{"node ready", NodeReady, []string{"b"}, false, ""},
		{"a later component", "c", []string{"b", "c"}, false, ""},
		{"misspelt", "kublet", []string{"kubelet"}, false, `o must be ready before "kublet", which is not supervised`},
		{"empty, the old sentinel", "", []string{"b"}, false, `o must be ready before "", which is not supervised`},
		{"itself", "o", []string{"b"}, false, "o must be ready before o, which does not start after it"},
		{"an earlier component", "early", []string{"b"}, true, "o must be ready before early, which does not start after it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			var list []Component
			if tt.earlier {
				list = append(list, newFake("early", rec))
			}
			o := &overlapped{fake: newFake("o", rec), before: tt.before, release: make(chan struct{})}
			close(o.release)
			list = append(list, o)
			for _, n := range tt.others {
				list = append(list, newFake(n, rec))
			}
			ctx, cancel := context.WithCancel(context.Background())
			err := New(list...).Run(ctx, cancel)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if got := rec.get(); len(got) != 0 {
				t.Errorf("a bad order must stop Run before any Init: %v", got)
			}
		})
	}
}

func TestDuplicateNamesRefused(t *testing.T) {
	rec := &recorder{}
	err := New(newFake("a", rec), newFake("b", rec), newFake("a", rec)).Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), `component "a" is listed twice`) {
		t.Fatalf("err = %v", err)
	}
}
