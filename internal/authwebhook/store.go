// Package authwebhook serves kube-apiserver's token authentication webhook
// from credentials/known_tokens.csv. kube-apiserver reads --token-auth-file
// once, at start; this webhook reloads the file when it changes, so `kubeseed
// token add/remove` takes effect without restarting anything.
package authwebhook

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	authnv1 "k8s.io/api/authentication/v1"

	"github.com/kubeseed/kubeseed/internal/credentials"
)

// Store is the set of valid tokens. Only SHA-256 digests of the tokens are
// kept in memory.
type Store struct {
	path    string
	current atomic.Pointer[[]entry]

	mu         sync.Mutex // serialises Reload, guards err
	lastDigest [sha256.Size]byte
	loaded     bool
	// err is why the file was last rejected; nil while its tokens are active.
	err error
	// active is the SHA-256 of the file content whose tokens are active.
	active atomic.Pointer[[sha256.Size]byte]
}

type entry struct {
	hash [sha256.Size]byte
	user authnv1.UserInfo
}

// NewStore returns an empty store for the token file at path; call Reload.
func NewStore(path string) *Store {
	s := &Store{path: path}
	s.current.Store(&[]entry{})
	return s
}

// Path is the token file.
func (s *Store) Path() string { return s.path }

// Active returns the SHA-256 of the file content whose tokens are active,
// and false before a first good load or while the file is rejected.
func (s *Store) Active() ([sha256.Size]byte, bool) {
	if d := s.active.Load(); d != nil {
		return *d, true
	}
	return [sha256.Size]byte{}, false
}

// Len is the number of tokens in the active set.
func (s *Store) Len() int { return len(*s.current.Load()) }

// Err is why the token file was last rejected (path:line for a parse
// error), or nil while its tokens are active.
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Reload reads the token file. If its content changed since the last call
// and parses, it becomes the active set (changed is true). If it cannot be
// read or does not parse, the store fails closed: no token authenticates
// until a good file is read (changed is true if a set was active). The
// error names path:line; the same problem is reported once, not at every
// call, and stays available from Err.
func (s *Store) Reload() (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(s.path)
	if err != nil {
		s.loaded = false // whatever comes back must be parsed again
		return s.reject(fmt.Errorf("read %s: %w", s.path, err))
	}
	digest := sha256.Sum256(data)
	if s.loaded && digest == s.lastDigest {
		return false, nil
	}
	s.lastDigest, s.loaded = digest, true
	tokens, err := credentials.ParseTokens(s.path, data)
	if err != nil {
		clear(data)
		return s.reject(err)
	}
	entries := make([]entry, 0, len(tokens))
	for _, t := range tokens {
		groups := t.Groups
		if groups == nil {
			groups = []string{}
		}
		entries = append(entries, entry{
			hash: t.Digest(),
			user: authnv1.UserInfo{Username: t.User, UID: t.UID, Groups: groups},
		})
	}
	s.current.Store(&entries)
	s.active.Store(&digest)
	s.err = nil
	// Drop the file's bytes, tokens included, as soon as possible.
	clear(data)
	return true, nil
}

// reject drops every token. Keeping the last good set would keep a token
// the user just deleted by hand valid for as long as the file stays broken;
// X.509 client certificates (the admin's kubeconfig) still work meanwhile.
// Called with mu held.
func (s *Store) reject(err error) (changed bool, _ error) {
	changed = s.active.Load() != nil
	s.current.Store(&[]entry{})
	s.active.Store(nil)
	repeat := s.err != nil && s.err.Error() == err.Error()
	s.err = err
	if repeat {
		return changed, nil
	}
	return changed, err
}

// Authenticate returns the user a token belongs to. Every entry is compared
// in constant time, and the loop does not stop at a match, so the time taken
// says nothing about which token, if any, matched.
func (s *Store) Authenticate(token string) (authnv1.UserInfo, bool) {
	if token == "" {
		return authnv1.UserInfo{}, false
	}
	sum := sha256.Sum256([]byte(token))
	var found *entry
	entries := *s.current.Load()
	for i := range entries {
		if subtle.ConstantTimeCompare(sum[:], entries[i].hash[:]) == 1 {
			found = &entries[i]
		}
	}
	if found == nil {
		return authnv1.UserInfo{}, false
	}
	u := found.user
	u.Groups = append([]string(nil), u.Groups...)
	return u, true
}
