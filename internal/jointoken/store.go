package jointoken

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prefix is where the records live in etcd, one key per token id.
const Prefix = "/kubeseed/join-tokens/"

var (
	ErrUnknown     = errors.New("unknown join token (never created, revoked, used up, or wrong secret): create one with kubeseed add-node")
	ErrExpired     = errors.New("join token expired: create a new one with kubeseed add-node")
	ErrRole        = errors.New("wrong join token role: a worker joins with a token from kubeseed add-node --worker, a control plane with one from kubeseed add-node")
	ErrUsedUp      = errors.New("join token has no uses left (all used, or held by joins in progress): wait for those joins to finish or fail, or create a new token with kubeseed add-node")
	ErrNotReserved = errors.New("join attempt is not reserved (unknown, released, held too long, or its token is gone): start the join again")
)

// Reservation holds one use of a token for a join in progress.
type Reservation struct {
	Attempt string    `json:"attempt"`
	Node    string    `json:"node"`
	Until   time.Time `json:"until"`
}

// Record is what etcd holds for a token: the secret's digest, never the
// secret.
type Record struct {
	ID           string        `json:"id"`
	Digest       string        `json:"digest"` // hex sha256(secret)
	Role         Role          `json:"role"`
	Created      time.Time     `json:"created"`
	Expires      time.Time     `json:"expires"`
	UsesLeft     int           `json:"usesLeft"`
	Description  string        `json:"description,omitempty"`
	Reservations []Reservation `json:"reservations,omitempty"`
}

// Expired reports whether the token can no longer be reserved.
func (r *Record) Expired(now time.Time) bool { return !now.Before(r.Expires) }

// Live is the reservations still held at now.
func (r *Record) Live(now time.Time) []Reservation {
	var out []Reservation
	for _, v := range r.Reservations {
		if now.Before(v.Until) {
			out = append(out, v)
		}
	}
	return out
}

// Store keeps records in etcd. Every change is a compare-and-swap on the
// key's ModRevision, so Stores of several control planes on one etcd never
// lose each other's updates.
type Store struct {
	kv  clientv3.KV
	now func() time.Time
}

// NewStore uses kv; now is the clock, time.Now if nil.
func NewStore(kv clientv3.KV, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{kv: kv, now: now}
}

const maxDescription = 256

// Create mints a token and stores its record. The token is the only copy
// of the secret.
func (s *Store) Create(ctx context.Context, role Role, ttl time.Duration, uses int, description string) (Token, Record, error) {
	switch {
	case !role.valid():
		return Token{}, Record{}, fmt.Errorf("create join token: role %q: want %q or %q", role, Worker, ControlPlane)
	case ttl <= 0:
		return Token{}, Record{}, fmt.Errorf("create join token: lifetime %v: want more than 0", ttl)
	case uses < 1:
		return Token{}, Record{}, fmt.Errorf("create join token: %d uses: want at least 1", uses)
	case len(description) > maxDescription:
		return Token{}, Record{}, fmt.Errorf("create join token: description has %d bytes, want at most %d", len(description), maxDescription)
	case !printable(description):
		// add-node --list prints it to a terminal.
		return Token{}, Record{}, errors.New("create join token: description must be printable UTF-8 text")
	}
	// 36^6 ids: a clash is rare, and the create-only Txn turns it into a retry.
	for range 5 {
		tok, err := New()
		if err != nil {
			return Token{}, Record{}, fmt.Errorf("create join token: %w", err)
		}
		now := s.clock()
		rec := Record{
			ID: tok.ID, Digest: digest(tok.Secret), Role: role,
			Created: now, Expires: now.Add(ttl), UsesLeft: uses, Description: description,
		}
		val, err := json.Marshal(rec)
		if err != nil {
			return Token{}, Record{}, fmt.Errorf("create join token %s: %w", tok.ID, err)
		}
		key := Prefix + tok.ID
		resp, err := s.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(val))).
			Commit()
		if err != nil {
			return Token{}, Record{}, fmt.Errorf("create join token %s: store in etcd: %w", tok.ID, err)
		}
		if resp.Succeeded {
			return tok, rec, nil
		}
	}
	return Token{}, Record{}, errors.New("create join token: every id tried is taken")
}

// List returns the records that can still be reserved, oldest first, and
// deletes expired ones. An expired record with a join still holding it is
// kept, not listed, so that join can complete.
func (s *Store) List(ctx context.Context) ([]Record, error) {
	resp, err := s.kv.Get(ctx, Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list join tokens: read etcd: %w", err)
	}
	now := s.clock()
	var out []Record
	for _, kv := range resp.Kvs {
		var rec Record
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("list join tokens: record %s: %w", kv.Key, err)
		}
		live := rec.Live(now)
		if !rec.Expired(now) {
			rec.Reservations = live
			out = append(out, rec)
			continue
		}
		if len(live) > 0 {
			continue
		}
		// A failed compare means another Store changed or removed it; the
		// next List looks again.
		_, err := s.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(string(kv.Key))).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("list join tokens: delete expired %s: %w", rec.ID, err)
		}
	}
	slices.SortFunc(out, func(a, b Record) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Revoke deletes a token, also one a join holds: that join's Complete then
// fails.
func (s *Store) Revoke(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("revoke join token %q: %w", id, ErrUnknown)
	}
	resp, err := s.kv.Delete(ctx, Prefix+id)
	if err != nil {
		return fmt.Errorf("revoke join token %s: %w", id, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("revoke join token %s: %w", id, ErrUnknown)
	}
	return nil
}

// Reserve holds one use of t for a join of node as role, until now+hold.
// The secret is checked before anything else, so without it a caller
// learns nothing about the token.
func (s *Store) Reserve(ctx context.Context, t Token, role Role, node string, hold time.Duration) (string, Record, error) {
	switch {
	case !role.valid():
		return "", Record{}, fmt.Errorf("reserve join token %s: role %q: want %q or %q", t.ID, role, Worker, ControlPlane)
	case hold <= 0:
		return "", Record{}, fmt.Errorf("reserve join token %s: hold %v: want more than 0", t.ID, hold)
	case node == "":
		return "", Record{}, fmt.Errorf("reserve join token %s: no node name", t.ID)
	}
	// One error for an unknown id and a wrong secret.
	unknown := fmt.Errorf("join token %s: %w", t.ID, ErrUnknown)
	if !validID(t.ID) {
		return "", Record{}, fmt.Errorf("join token: %w", ErrUnknown)
	}
	want := digest(t.Secret)
	attempt := rand.Text()
	rec, err := s.update(ctx, t.ID, unknown, func(rec *Record, now time.Time) (op, error) {
		if subtle.ConstantTimeCompare([]byte(want), []byte(rec.Digest)) != 1 {
			return none, unknown
		}
		if rec.Expired(now) {
			return none, fmt.Errorf("join token %s (expired at %s): %w", t.ID, rec.Expires.Format(time.RFC3339), ErrExpired)
		}
		if rec.Role != role {
			return none, fmt.Errorf("join token %s is for a %s, this join is for a %s: %w", t.ID, rec.Role, role, ErrRole)
		}
		// A join retried for the same node (the first was killed or lost
		// its answer) takes over that node's reservation rather than
		// waiting for it to expire.
		rec.Reservations = slices.DeleteFunc(rec.Live(now), func(r Reservation) bool { return r.Node == node })
		if rec.UsesLeft-len(rec.Reservations) <= 0 {
			return none, fmt.Errorf("join token %s: %d uses left, %d held by joins in progress: %w", t.ID, rec.UsesLeft, len(rec.Reservations), ErrUsedUp)
		}
		rec.Reservations = append(rec.Reservations, Reservation{Attempt: attempt, Node: node, Until: now.Add(hold)})
		return put, nil
	})
	if err != nil {
		return "", Record{}, err
	}
	return attempt, rec, nil
}

// Release ends a failed join: its reservation goes, the use stays.
func (s *Store) Release(ctx context.Context, id, attempt string) error {
	return s.finish(ctx, "release", id, attempt, false)
}

// Complete ends a join that succeeded: it consumes the reserved use, and
// the record goes with its last use.
func (s *Store) Complete(ctx context.Context, id, attempt string) error {
	return s.finish(ctx, "complete", id, attempt, true)
}

func (s *Store) finish(ctx context.Context, verb, id, attempt string, consume bool) error {
	gone := fmt.Errorf("%s join attempt on token %s: token is gone: %w", verb, id, ErrNotReserved)
	if !validID(id) {
		return fmt.Errorf("%s join attempt on token %q: %w", verb, id, ErrNotReserved)
	}
	_, err := s.update(ctx, id, gone, func(rec *Record, now time.Time) (op, error) {
		live := rec.Live(now)
		i := slices.IndexFunc(live, func(r Reservation) bool {
			return subtle.ConstantTimeCompare([]byte(r.Attempt), []byte(attempt)) == 1
		})
		if i < 0 {
			return none, fmt.Errorf("%s join attempt on token %s: %w", verb, id, ErrNotReserved)
		}
		rec.Reservations = slices.Delete(live, i, i+1)
		if !consume {
			return put, nil
		}
		if rec.UsesLeft--; rec.UsesLeft <= 0 {
			return del, nil
		}
		return put, nil
	})
	return err
}

type op int

const (
	none op = iota
	put
	del
)

// maxConflicts bounds the retries of one update; each conflict means
// another writer got through, so progress is made.
const maxConflicts = 100

// update reads the record of id, lets f change it and writes it back if
// the key has not changed since the read; otherwise it reads again.
// missing is the error when there is no record.
func (s *Store) update(ctx context.Context, id string, missing error, f func(*Record, time.Time) (op, error)) (Record, error) {
	key := Prefix + id
	for try := 0; ; try++ {
		resp, err := s.kv.Get(ctx, key)
		if err != nil {
			return Record{}, fmt.Errorf("join token %s: read etcd: %w", id, err)
		}
		if len(resp.Kvs) == 0 {
			return Record{}, missing
		}
		kv := resp.Kvs[0]
		var rec Record
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return Record{}, fmt.Errorf("join token %s: record in etcd: %w", id, err)
		}
		o, err := f(&rec, s.clock())
		if err != nil {
			return Record{}, err
		}
		if o == none {
			return rec, nil
		}
		then := clientv3.OpDelete(key)
		if o == put {
			val, err := json.Marshal(rec)
			if err != nil {
				return Record{}, fmt.Errorf("join token %s: %w", id, err)
			}
			then = clientv3.OpPut(key, string(val))
		}
		tr, err := s.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(then).
			Commit()
		if err != nil {
			return Record{}, fmt.Errorf("join token %s: write etcd: %w", id, err)
		}
		if tr.Succeeded {
			return rec, nil
		}
		if try >= maxConflicts {
			return Record{}, fmt.Errorf("join token %s: gave up after %d conflicting writes", id, try+1)
		}
		// Jitter spreads writers that collided so they do not collide again.
		select {
		case <-ctx.Done():
			return Record{}, fmt.Errorf("join token %s: %w", id, ctx.Err())
		case <-time.After(time.Duration(mrand.Int64N(int64(time.Millisecond) * int64(min(try+1, 10))))):
		}
	}
}

// clock is now without the monotonic reading and in UTC, so records
// compare equal after a JSON round trip and read alike on every node.
func (s *Store) clock() time.Time { return s.now().Round(0).UTC() }

func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
}

func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
