package agent

import (
	"sync"
	"time"
)

// failureLimiter refuses a source address after too many failed attempts
// in a window, so join tokens cannot be guessed at speed.
type failureLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	fails  map[string][]time.Time
}

func newFailureLimiter(max int, window time.Duration, now func() time.Time) *failureLimiter {
	return &failureLimiter{max: max, window: window, now: now, fails: map[string][]time.Time{}}
}

// recent drops failures older than the window; call with mu held.
func (f *failureLimiter) recent(addr string) []time.Time {
	cut := f.now().Add(-f.window)
	kept := f.fails[addr][:0]
	for _, t := range f.fails[addr] {
		if t.After(cut) {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		delete(f.fails, addr)
		return nil
	}
	f.fails[addr] = kept
	return kept
}

// Allowed reports whether addr may try again, and if not, when it may.
func (f *failureLimiter) Allowed(addr string) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.recent(addr)
	if len(r) < f.max {
		return true, 0
	}
	return false, r[0].Add(f.window).Sub(f.now())
}

// Fail records a failed attempt from addr.
func (f *failureLimiter) Fail(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recent(addr)
	f.fails[addr] = append(f.fails[addr], f.now())
	// Bound the memory an attacker can make us spend.
	if len(f.fails) > 10000 {
		for k := range f.fails {
			delete(f.fails, k)
			break
		}
	}
}
