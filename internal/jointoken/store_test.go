package jointoken

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubeseed/kubeseed/internal/testutil/etcdtest"
)

// fakeClock is shared by every Store of a test, as one wall clock is by
// the control planes of a cluster.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	endpoint string
	cli      *clientv3.Client
	clock    *fakeClock
	store    *Store
	ctx      context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ep := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := &env{endpoint: ep, cli: etcdtest.Client(t, ep), clock: &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)}, ctx: ctx}
	e.store = NewStore(e.cli, e.clock.Now)
	return e
}

// otherStore is a second control plane's Store: its own etcd connection,
// the same clock.
func (e *env) otherStore(t *testing.T) *Store {
	return NewStore(etcdtest.Client(t, e.endpoint), e.clock.Now)
}

func (e *env) create(t *testing.T, role Role, ttl time.Duration, uses int) (Token, Record) {
	t.Helper()
	tok, rec, err := e.store.Create(e.ctx, role, ttl, uses, "test")
	if err != nil {
		t.Fatal(err)
	}
	return tok, rec
}

func (e *env) reserve(t *testing.T, tok Token, node string) string {
	t.Helper()
	attempt, _, err := e.store.Reserve(e.ctx, tok, Worker, node, 10*time.Minute)
	if err != nil {
		t.Fatalf("reserve for %s: %v", node, err)
	}
	return attempt
}

// stored is the record in etcd, or false if there is none.
func (e *env) stored(t *testing.T, id string) (string, bool) {
	t.Helper()
	resp, err := e.cli.Get(e.ctx, Prefix+id)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func TestReserveCompleteConsumes(t *testing.T) {
	e := newEnv(t)
	tok, created := e.create(t, Worker, time.Hour, 1)
	if created.UsesLeft != 1 || created.Role != Worker || !created.Expires.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("created %+v", created)
	}
	attempt, rec, err := e.store.Reserve(e.ctx, tok, Worker, "node-a", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if attempt == "" || len(rec.Reservations) != 1 || rec.Reservations[0].Node != "node-a" || rec.Reservations[0].Attempt != attempt {
		t.Fatalf("reserve returned %q, %+v", attempt, rec)
	}
	if err := e.store.Complete(e.ctx, tok.ID, attempt); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.stored(t, tok.ID); ok {
		t.Fatal("record of a used-up token is still in etcd")
	}
	_, _, err = e.store.Reserve(e.ctx, tok, Worker, "node-b", time.Minute)
	wantErr(t, "reserve a used-up token", err, ErrUnknown)
	wantErr(t, "complete twice", e.store.Complete(e.ctx, tok.ID, attempt), ErrNotReserved)
}

func TestSecretNotStored(t *testing.T) {
	e := newEnv(t)
	tok, rec := e.create(t, Worker, time.Hour, 1)
	val, ok := e.stored(t, tok.ID)
	if !ok {
		t.Fatal("no record")
	}
	if strings.Contains(val, tok.Secret) {
		t.Fatalf("record holds the secret: %s", val)
	}
	if rec.Digest != digest(tok.Secret) || !strings.Contains(val, rec.Digest) || len(rec.Digest) != 64 {
		t.Fatalf("record %s, want the digest %s", val, digest(tok.Secret))
	}
}

func TestSingleUse(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.create(t, Worker, time.Hour, 1)
	a := e.reserve(t, tok, "node-a")
	_, _, err := e.store.Reserve(e.ctx, tok, Worker, "node-b", 10*time.Minute)
	wantErr(t, "second reserve while one is live", err, ErrUsedUp)

	if err := e.store.Release(e.ctx, tok.ID, a); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "complete a released attempt", e.store.Complete(e.ctx, tok.ID, a), ErrNotReserved)
	wantErr(t, "release twice", e.store.Release(e.ctx, tok.ID, a), ErrNotReserved)
	b := e.reserve(t, tok, "node-b")
	if err := e.store.Complete(e.ctx, tok.ID, b); err != nil {
		t.Fatal(err)
	}
}

func TestMultiUse(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.create(t, Worker, time.Hour, 2)
	a, b := e.reserve(t, tok, "node-a"), e.reserve(t, tok, "node-b")
	_, _, err := e.store.Reserve(e.ctx, tok, Worker, "node-c", time.Minute)
	wantErr(t, "third reserve on two uses", err, ErrUsedUp)
	if err := e.store.Complete(e.ctx, tok.ID, a); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.store.Reserve(e.ctx, tok, Worker, "node-c", time.Minute)
	wantErr(t, "reserve the last use while it is held", err, ErrUsedUp)
	if err := e.store.Release(e.ctx, tok.ID, b); err != nil {
		t.Fatal(err)
	}
	c := e.reserve(t, tok, "node-c")
	if _, ok := e.stored(t, tok.ID); !ok {
		t.Fatal("record gone with a use left")
	}
	if err := e.store.Complete(e.ctx, tok.ID, c); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.stored(t, tok.ID); ok {
		t.Fatal("record still in etcd after its last use")
	}
}

func TestAbandonedReservationExpires(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.create(t, Worker, time.Hour, 1)
	a := e.reserve(t, tok, "node-a") // held 10 minutes
	e.clock.Advance(10*time.Minute - time.Second)
	_, _, err := e.store.Reserve(e.ctx, tok, Worker, "node-b", 10*time.Minute)
	wantErr(t, "reserve while the first is held", err, ErrUsedUp)
	e.clock.Advance(time.Second)
	b := e.reserve(t, tok, "node-b")
	wantErr(t, "complete the abandoned attempt", e.store.Complete(e.ctx, tok.ID, a), ErrNotReserved)
	if err := e.store.Complete(e.ctx, tok.ID, b); err != nil {
		t.Fatal(err)
	}
}

func TestExpiry(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.create(t, Worker, time.Hour, 2)
	e.clock.Advance(time.Hour - time.Nanosecond)
	held := e.reserve(t, tok, "node-a")
	e.clock.Advance(time.Nanosecond)
	_, _, err := e.store.Reserve(e.ctx, tok, Worker, "node-b", time.Minute)
	wantErr(t, "reserve at expiry", err, ErrExpired)
	if !strings.Contains(err.Error(), "(expired at 2030-01-02T04:04:05Z)") {
		t.Errorf("error %q does not say when", err)
	}
	// A join that reserved in time may finish late, even after a List.
	if _, err := e.store.List(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Complete(e.ctx, tok.ID, held); err != nil {
		t.Fatalf("complete a join reserved before expiry: %v", err)
	}
}

func TestWrongRole(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ token, join Role }{{Worker, ControlPlane}, {ControlPlane, Worker}} {
		tok, _ := e.create(t, c.token, time.Hour, 1)
		_, _, err := e.store.Reserve(e.ctx, tok, c.join, "node-a", time.Minute)
		wantErr(t, "reserve a "+string(c.token)+" token for a "+string(c.join), err, ErrRole)
		if !strings.Contains(err.Error(), "is for a "+string(c.token)+", this join is for a "+string(c.join)) {
			t.Errorf("error %q does not name the roles", err)
		}
		if _, _, err := e.store.Reserve(e.ctx, tok, c.token, "node-a", time.Minute); err != nil {
			t.Errorf("a refused role used the token up: %v", err)
		}
	}
}

// TestWrongSecretLooksUnknown: without the secret a caller learns nothing,
// not even that the id exists, expired or is for another role.
func TestWrongSecretLooksUnknown(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.create(t, Worker, time.Hour, 1)
	wrong := Token{ID: tok.ID, Secret: strings.Repeat("a", 32)}
	_, _, errWrong := e.store.Reserve(e.ctx, wrong, Worker, "node-a", time.Minute)
	wantErr(t, "wrong secret", errWrong, ErrUnknown)
	_, _, err := e.store.Reserve(e.ctx, wrong, ControlPlane, "node-a", time.Minute)
	wantErr(t, "wrong secret and role", err, ErrUnknown)
	e.reserve(t, tok, "node-a")
	_, _, err = e.store.Reserve(e.ctx, wrong, Worker, "node-b", time.Minute)
	wantErr(t, "wrong secret on a held token", err, ErrUnknown)
	if err := e.store.Revoke(e.ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	_, _, errGone := e.store.Reserve(e.ctx, tok, Worker, "node-a", time.Minute)
	wantErr(t, "right secret, no record", errGone, ErrUnknown)
	if errWrong.Error() != errGone.Error() {
		t.Errorf("a wrong secret (%q) reads differently from an unknown id (%q)", errWrong, errGone)
	}
	if strings.Contains(errWrong.Error(), wrong.Secret) {
		t.Errorf("error %q repeats the secret", errWrong)
	}

	old, _ := e.create(t, Worker, time.Minute, 1)
	e.clock.Advance(time.Hour)
	_, _, err = e.store.Reserve(e.ctx, Token{ID: old.ID, Secret: wrong.Secret}, Worker, "node-a", time.Minute)
	wantErr(t, "wrong secret on an expired token", err, ErrUnknown)
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.create(t, ControlPlane, time.Hour, 3)
	a, _, err := e.store.Reserve(e.ctx, tok, ControlPlane, "cp-2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Revoke(e.ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.stored(t, tok.ID); ok {
		t.Fatal("revoked record still in etcd")
	}
	_, _, err = e.store.Reserve(e.ctx, tok, ControlPlane, "cp-3", time.Minute)
	wantErr(t, "reserve a revoked token", err, ErrUnknown)
	wantErr(t, "complete on a revoked token", e.store.Complete(e.ctx, tok.ID, a), ErrNotReserved)
	wantErr(t, "revoke twice", e.store.Revoke(e.ctx, tok.ID), ErrUnknown)
	wantErr(t, "revoke a malformed id", e.store.Revoke(e.ctx, "../x"), ErrUnknown)
}

func TestListGC(t *testing.T) {
	e := newEnv(t)
	b, _ := e.create(t, Worker, 2*time.Hour, 1)
	e.clock.Advance(time.Second)
	a, _ := e.create(t, Worker, time.Hour, 1)
	e.clock.Advance(time.Second)
	c, _ := e.create(t, ControlPlane, 3*time.Hour, 1)
	e.clock.Advance(time.Second)
	held, _ := e.create(t, Worker, time.Hour, 1)
	bAttempt := e.reserve(t, b, "node-b")

	e.clock.Advance(55 * time.Minute)
	e.reserve(t, held, "node-h") // held to 1h05m
	e.clock.Advance(6 * time.Minute)

	ids := func(recs []Record) []string {
		var out []string
		for _, r := range recs {
			out = append(out, r.ID)
		}
		return out
	}
	recs, err := e.store.List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(ids(recs), ","), b.ID+","+c.ID; got != want {
		t.Fatalf("List = %s, want %s (by creation, expired left out)", got, want)
	}
	if len(recs[0].Reservations) != 0 {
		t.Errorf("List shows the lapsed reservation %+v", recs[0].Reservations)
	}
	if _, ok := e.stored(t, a.ID); ok {
		t.Error("List left an expired record in etcd")
	}
	if _, ok := e.stored(t, held.ID); !ok {
		t.Error("List deleted an expired record a join still holds")
	}
	wantErr(t, "complete a lapsed reservation", e.store.Complete(e.ctx, b.ID, bAttempt), ErrNotReserved)

	e.clock.Advance(5 * time.Minute)
	if _, err := e.store.List(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.stored(t, held.ID); ok {
		t.Error("List left an expired record whose reservation lapsed")
	}
	e.clock.Advance(3 * time.Hour)
	if recs, err := e.store.List(e.ctx); err != nil || len(recs) != 0 {
		t.Fatalf("List after every expiry = %v, %v", ids(recs), err)
	}
	if resp, err := e.cli.Get(e.ctx, Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("%d records left in etcd, %v", resp.Count, err)
	}
}

func TestCreateValidates(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		name  string
		role  Role
		ttl   time.Duration
		uses  int
		desc  string
		wants string
	}{
		{"zero ttl", Worker, 0, 1, "", "lifetime 0s"},
		{"negative ttl", Worker, -time.Hour, 1, "", "lifetime -1h0m0s"},
		{"no uses", Worker, time.Hour, 0, "", "0 uses"},
		{"bad role", "admin", time.Hour, 1, "", `role "admin"`},
		{"long description", Worker, time.Hour, 1, strings.Repeat("x", 257), "description has 257 bytes"},
		{"escape in description", Worker, time.Hour, 1, "cp\x1b[2J", "printable"},
		{"newline in description", Worker, time.Hour, 1, "a\nb", "printable"},
		{"invalid UTF-8 in description", Worker, time.Hour, 1, "a\xffb", "printable"},
	} {
		_, _, err := e.store.Create(e.ctx, c.role, c.ttl, c.uses, c.desc)
		if err == nil || !strings.Contains(err.Error(), c.wants) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.wants)
		}
	}
	if resp, err := e.cli.Get(e.ctx, Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("refused creates stored %d records, %v", resp.Count, err)
	}
	if _, rec, err := e.store.Create(e.ctx, Worker, time.Hour, 1, "rack 3, nœud é"); err != nil || rec.Description != "rack 3, nœud é" {
		t.Fatalf("printable description: %+v, %v", rec, err)
	}
}

// interleaveKV runs between once right after the first Get, as if another
// control plane wrote between this Store's read and its write.
type interleaveKV struct {
	clientv3.KV
	between func()
	fired   bool
}

func (k *interleaveKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := k.KV.Get(ctx, key, opts...)
	if !k.fired {
		k.fired = true
		k.between()
	}
	return resp, err
}

// TestConflictingWriteIsNotLost: a write between a Store's read and its
// write makes the compare fail, and the retry sees it. Without the
// compare, the later write would erase the earlier reservation.
func TestConflictingWriteIsNotLost(t *testing.T) {
	e := newEnv(t)
	other := e.otherStore(t)

	tok, _ := e.create(t, Worker, time.Hour, 2)
	kv := &interleaveKV{KV: e.cli, between: func() {
		if _, _, err := other.Reserve(e.ctx, tok, Worker, "node-b", time.Minute); err != nil {
			t.Errorf("interleaved reserve: %v", err)
		}
	}}
	_, rec, err := NewStore(kv, e.clock.Now).Reserve(e.ctx, tok, Worker, "node-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !kv.fired || len(rec.Reservations) != 2 {
		t.Fatalf("interleaved %v, reservations %+v: want node-b's and node-a's", kv.fired, rec.Reservations)
	}
	_, _, err = e.store.Reserve(e.ctx, tok, Worker, "node-c", time.Minute)
	wantErr(t, "third reserve on two uses", err, ErrUsedUp)

	// The same for Complete: the use it consumes and a reservation made
	// meanwhile both count.
	tok2, _ := e.create(t, Worker, time.Hour, 2)
	a := e.reserve(t, tok2, "node-a")
	kv = &interleaveKV{KV: e.cli, between: func() {
		if _, _, err := other.Reserve(e.ctx, tok2, Worker, "node-b", time.Minute); err != nil {
			t.Errorf("interleaved reserve: %v", err)
		}
	}}
	if err := NewStore(kv, e.clock.Now).Complete(e.ctx, tok2.ID, a); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.store.Reserve(e.ctx, tok2, Worker, "node-c", time.Minute)
	wantErr(t, "reserve after one use consumed and one held", err, ErrUsedUp)
}

// TestRace: joins at two control planes at once never get more
// reservations than the token has uses.
func TestRace(t *testing.T) {
	e := newEnv(t)
	stores := []*Store{e.store, e.otherStore(t)}
	for _, uses := range []int{1, 1, 1, 3} {
		tok, _ := e.create(t, Worker, time.Hour, uses)
		const n = 20
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			mu       sync.Mutex
			attempts []string
			usedUp   int
			others   []error
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				a, _, err := stores[i%2].Reserve(e.ctx, tok, Worker, fmt.Sprintf("node-%d", i), time.Minute)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					attempts = append(attempts, a)
				case errors.Is(err, ErrUsedUp):
					usedUp++
				default:
					others = append(others, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(attempts) != uses || usedUp != n-uses || len(others) != 0 {
			t.Fatalf("%d uses: %d won, %d used up, other errors %v", uses, len(attempts), usedUp, others)
		}
		for i, a := range attempts {
			if err := stores[i%2].Complete(e.ctx, tok.ID, a); err != nil {
				t.Fatalf("complete a winner: %v", err)
			}
		}
		if _, ok := e.stored(t, tok.ID); ok {
			t.Fatalf("%d uses: record left after every winner completed", uses)
		}
	}
}

func TestRetriedJoinTakesOverItsReservation(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.create(t, Worker, time.Hour, 1)
	killed := e.reserve(t, tok, "node-a") // its joiner was killed
	retry := e.reserve(t, tok, "node-a")  // the same node, at once
	wantErr(t, "complete the killed attempt", e.store.Complete(e.ctx, tok.ID, killed), ErrNotReserved)
	_, _, err := e.store.Reserve(e.ctx, tok, Worker, "node-b", 10*time.Minute)
	wantErr(t, "another node while the retry holds the use", err, ErrUsedUp)
	if err := e.store.Complete(e.ctx, tok.ID, retry); err != nil {
		t.Fatal(err)
	}
}
