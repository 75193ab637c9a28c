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

	mu         sync.Mutex // serialises Reload
	lastDigest [sha256.Size]byte
	loaded     bool
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
// and false before a first good load.
func (s *Store) Active() ([sha256.Size]byte, bool) {
	if d := s.active.Load(); d != nil {
		return *d, true
	}
	return [sha256.Size]byte{}, false
}

// Len is the number of tokens in the active set.
func (s *Store) Len() int { return len(*s.current.Load()) }

// Reload reads the token file. If its content changed since the last call
// and parses, it becomes the active set (changed is true). If it does not
// parse, the error names path:line and the last good set stays active; the
// same bad content is reported once, not at every call.
func (s *Store) Reload() (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(s.path)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", s.path, err)
	}
	digest := sha256.Sum256(data)
	if s.loaded && digest == s.lastDigest {
		return false, nil
	}
	s.lastDigest, s.loaded = digest, true
	tokens, err := credentials.ParseTokens(s.path, data)
	if err != nil {
		return false, err
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
	// Drop the file's bytes, tokens included, as soon as possible.
	clear(data)
	return true, nil
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
