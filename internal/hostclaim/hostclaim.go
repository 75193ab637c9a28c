// Package hostclaim records which live node owns a resource that nodes on
// one host could share: a network namespace's pod network, a cgroup root, a
// CNI network name, a pod log directory. A claim is an flock on a file
// under Dir, so it ends with the process however the process ends, and a
// stale file claims nothing.
package hostclaim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Dir holds the claim files of every node on the host. It is in /run, which
// all network namespaces of a host share, so a node in one namespace sees
// the claims of nodes in the others.
const Dir = "/run/kubeseed/claims"

// Claim names one resource: Kind says what it is, for messages, and Key
// identifies it on the host.
type Claim struct {
	Kind string
	Key  string
}

// Holder is the node that holds a claim.
type Holder struct {
	DataDir string `json:"dataDir"`
	PID     int    `json:"pid"`
	Kind    string `json:"kind"`
	Key     string `json:"key"`
}

// Set is the claims one process holds.
type Set struct {
	files []*os.File
}

// Release gives up every claim of the set and removes its files. A file is
// unlinked while still locked, so a concurrent Acquire either loses to us
// or sees the path gone and makes a new file (see lockFile).
func (s *Set) Release() {
	for _, f := range s.files {
		_ = os.Remove(f.Name())
		f.Close()
	}
	s.files = nil
}

// lockFile opens and locks the claim file at p. If the file was removed
// between our open and our lock, the lock guards nothing: open again.
func lockFile(p string) (*os.File, error) {
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open claim %s: %w", p, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return f, err
		}
		var held, now syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(p, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return f, nil
		}
		f.Close()
	}
}

// path is the claim's file: a digest of kind and key, so any key (a path,
// a name) makes a safe file name.
func path(dir string, c Claim) string {
	sum := sha256.Sum256([]byte(c.Kind + "\x00" + c.Key))
	return filepath.Join(dir, hex.EncodeToString(sum[:12])+".claim")
}

// Acquire takes every claim for the node on dataDir, or none: it fails,
// naming the holder, if another live node holds one of them.
func Acquire(dir, dataDir string, claims []Claim) (*Set, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	s := &Set{}
	for _, c := range claims {
		p := path(dir, c)
		f, err := lockFile(p)
		if f == nil {
			s.Release()
			return nil, err
		}
		if err != nil {
			h, _ := readHolder(f)
			f.Close()
			s.Release()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &InUseError{Claim: c, Holder: h}
			}
			return nil, fmt.Errorf("lock claim %s: %w", p, err)
		}
		data, _ := json.Marshal(Holder{DataDir: dataDir, PID: os.Getpid(), Kind: c.Kind, Key: c.Key})
		err = f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt(append(data, '\n'), 0)
		}
		if err != nil {
			f.Close()
			s.Release()
			return nil, fmt.Errorf("write claim %s: %w", p, err)
		}
		s.files = append(s.files, f)
	}
	return s, nil
}

// HeldBy reports the live node holding c, if any.
func HeldBy(dir string, c Claim) (Holder, bool, error) {
	f, err := os.Open(path(dir, c))
	if os.IsNotExist(err) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return Holder{}, false, nil
	} else if !errors.Is(err, syscall.EWOULDBLOCK) {
		return Holder{}, false, err
	}
	h, err := readHolder(f)
	return h, true, err
}

func readHolder(f *os.File) (Holder, error) {
	data := make([]byte, 4096)
	n, _ := f.ReadAt(data, 0)
	var h Holder
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(data[:n]))), &h); err != nil {
		return Holder{}, fmt.Errorf("%s: unreadable claim: %w", f.Name(), err)
	}
	return h, nil
}

// InUseError says which live node holds a claim.
type InUseError struct {
	Claim  Claim
	Holder Holder
}

func (e *InUseError) Error() string {
	who := "another live kubeseed node"
	if e.Holder.DataDir != "" {
		who = fmt.Sprintf("the kubeseed node on %s (pid %d)", e.Holder.DataDir, e.Holder.PID)
	}
	return fmt.Sprintf("%s %s is in use by %s", e.Claim.Kind, e.Claim.Key, who)
}

// NetnsID identifies the calling process's network namespace, as the
// kernel names it ("net:[4026531840]").
func NetnsID() (string, error) {
	id, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return "", fmt.Errorf("read this process's network namespace: %w", err)
	}
	return id, nil
}
