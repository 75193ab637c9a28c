package fsutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A Txn replaces a set of files so that, whatever point a crash hits, the
// files end up all old or all new once Recover has run: the new set (and a
// backup of what it replaces) is first staged and synced inside Root, then
// a commit marker is written atomically, and only then are the staged files
// renamed into place. Recover finishes the renames of a committed set and
// discards an uncommitted one.
//
// The staged files are synced and renamed like WriteFileAtomic's temp
// files; the rename is only deferred until the whole set is on disk.
type Txn struct {
	// Root is the data dir; every path of a Plan must be inside it.
	Root string
	// AfterOp, if set, runs after every file operation. An error stops the
	// transaction on the spot, without cleaning up, exactly as a crash
	// would; fault-injection tests use it.
	AfterOp func() error
}

// Change is one file of a set: its new content, or its removal.
type Change struct {
	Path   string // absolute, inside Txn.Root
	Data   []byte
	Mode   os.FileMode
	Remove bool
}

// Plan is one transaction.
type Plan struct {
	Changes []Change
	// BackupDir, if set, receives a copy of every changed path as it was
	// (see ReadBackup), created in the same transaction.
	BackupDir string
	// Consume, if set, is a directory deleted once the new set is in place
	// (an undo consumes the backup it restored).
	Consume string
	// Note is recorded in the backup's manifest.
	Note string
}

// Staging layout inside Txn.Root.
const (
	StagingDir     = ".certs-staging"
	commitMarker   = "COMMITTED"
	planFile       = "plan.json"
	stagedFiles    = "files"
	stagedBackup   = "backup"
	BackupManifest = "MANIFEST.json"
)

// ErrInterrupted wraps an AfterOp error: the transaction stopped as if the
// process had been killed.
var ErrInterrupted = errors.New("transaction interrupted")

type stagedPlan struct {
	Changes []stagedChange `json:"changes"`
	Backup  string         `json:"backup,omitempty"`  // relative to Root
	Consume string         `json:"consume,omitempty"` // relative to Root
}

type stagedChange struct {
	Path   string      `json:"path"` // relative to Root
	Staged string      `json:"staged,omitempty"`
	Remove bool        `json:"remove,omitempty"`
	Mode   os.FileMode `json:"mode"`
}

// BackupEntry is one file of a backup's manifest.
type BackupEntry struct {
	Path    string      `json:"path"` // relative to Root
	Existed bool        `json:"existed"`
	Mode    os.FileMode `json:"mode,omitempty"`
}

// BackupInfo is a backup's manifest.
type BackupInfo struct {
	Created time.Time     `json:"created"`
	Note    string        `json:"note,omitempty"`
	Files   []BackupEntry `json:"files"`
}

func (t Txn) staging() string { return filepath.Join(t.Root, StagingDir) }

func (t Txn) op() error {
	if t.AfterOp == nil {
		return nil
	}
	if err := t.AfterOp(); err != nil {
		return fmt.Errorf("%w: %v", ErrInterrupted, err)
	}
	return nil
}

// rel makes p relative to Root and refuses paths outside it.
func (t Txn) rel(p string) (string, error) {
	r, err := filepath.Rel(t.Root, p)
	if err != nil || r == "." || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) || filepath.IsAbs(r) {
		return "", fmt.Errorf("%s is not inside %s", p, t.Root)
	}
	if r == StagingDir || strings.HasPrefix(r, StagingDir+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is inside the staging dir", p)
	}
	return r, nil
}

func (t Txn) abs(rel string) (string, error) {
	p := filepath.Join(t.Root, rel)
	if _, err := t.rel(p); err != nil {
		return "", fmt.Errorf("%s: corrupt plan: %w", filepath.Join(t.staging(), planFile), err)
	}
	return p, nil
}

// Commit stages p, commits it and moves it into place. A staging dir left
// by an earlier run must have been recovered first.
func (t Txn) Commit(p Plan, now time.Time) error {
	st := t.staging()
	if ok, err := Exists(st); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%s exists: an earlier refresh was interrupted; recover it first", st)
	}
	sp := stagedPlan{}
	seen := map[string]bool{}
	for _, c := range p.Changes {
		r, err := t.rel(c.Path)
		if err != nil {
			return err
		}
		if seen[r] {
			return fmt.Errorf("%s appears twice in one change set", c.Path)
		}
		seen[r] = true
		sp.Changes = append(sp.Changes, stagedChange{Path: r, Remove: c.Remove, Mode: c.Mode})
	}
	for _, d := range []struct {
		in  string
		out *string
	}{{p.BackupDir, &sp.Backup}, {p.Consume, &sp.Consume}} {
		if d.in == "" {
			continue
		}
		r, err := t.rel(d.in)
		if err != nil {
			return err
		}
		*d.out = r
	}
	if sp.Backup != "" {
		if ok, err := Exists(p.BackupDir); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("backup dir %s already exists", p.BackupDir)
		}
	}

	// Stage. Until the marker exists, a crash leaves only the staging dir,
	// which Recover discards.
	if err := os.Mkdir(st, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", st, err)
	}
	if err := t.op(); err != nil {
		return err
	}
	fail := func(err error) error {
		_ = os.RemoveAll(st)
		return err
	}
	if err := os.Mkdir(filepath.Join(st, stagedFiles), 0o700); err != nil {
		return fail(fmt.Errorf("create staging dir: %w", err))
	}
	for i, c := range p.Changes {
		if c.Remove {
			continue
		}
		name := filepath.Join(stagedFiles, fmt.Sprint(i))
		if err := WriteFileAtomic(filepath.Join(st, name), c.Data, c.Mode); err != nil {
			return fail(err)
		}
		if err := t.op(); err != nil {
			return err
		}
		sp.Changes[i].Staged = name
	}
	if sp.Backup != "" {
		info := BackupInfo{Created: now.UTC(), Note: p.Note}
		for _, c := range sp.Changes {
			e, err := t.stageBackup(c.Path)
			if err != nil {
				return fail(err)
			}
			if e.Existed {
				if err := t.op(); err != nil {
					return err
				}
			}
			info.Files = append(info.Files, e)
		}
		data, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			return fail(err)
		}
		if err := WriteFileAtomic(filepath.Join(st, stagedBackup, BackupManifest), data, 0o600); err != nil {
			return fail(err)
		}
		if err := t.op(); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := WriteFileAtomic(filepath.Join(st, planFile), data, 0o600); err != nil {
		return fail(err)
	}
	if err := t.op(); err != nil {
		return err
	}
	// The commit point.
	if err := WriteFileAtomic(filepath.Join(st, commitMarker), []byte("committed\n"), 0o600); err != nil {
		return fail(err)
	}
	if err := t.op(); err != nil {
		return err
	}
	return t.rollForward(sp)
}

// stageBackup copies the current file at rel into the staged backup.
func (t Txn) stageBackup(rel string) (BackupEntry, error) {
	src := filepath.Join(t.Root, rel)
	data, err := os.ReadFile(src)
	if errors.Is(err, os.ErrNotExist) {
		return BackupEntry{Path: rel}, nil
	}
	if err != nil {
		return BackupEntry{}, fmt.Errorf("back up %s: %w", src, err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return BackupEntry{}, fmt.Errorf("back up %s: %w", src, err)
	}
	dst := filepath.Join(t.staging(), stagedBackup, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return BackupEntry{}, fmt.Errorf("back up %s: %w", src, err)
	}
	if err := WriteFileAtomic(dst, data, fi.Mode().Perm()); err != nil {
		return BackupEntry{}, err
	}
	return BackupEntry{Path: rel, Existed: true, Mode: fi.Mode().Perm()}, nil
}

// rollForward moves a committed set into place. Every step can be redone:
// a staged file that is gone has already been renamed.
func (t Txn) rollForward(sp stagedPlan) error {
	st := t.staging()
	dirs := map[string]bool{t.Root: true}
	if sp.Backup != "" {
		src := filepath.Join(st, stagedBackup)
		dst, err := t.abs(sp.Backup)
		if err != nil {
			return err
		}
		if ok, err := Exists(src); err != nil {
			return err
		} else if ok {
			if err := EnsureDir(filepath.Dir(dst), 0o700); err != nil {
				return err
			}
			if err := os.Rename(src, dst); err != nil {
				return fmt.Errorf("move backup to %s: %w", dst, err)
			}
			if err := syncDir(filepath.Dir(dst)); err != nil {
				return err
			}
			if err := t.op(); err != nil {
				return err
			}
		}
	}
	for _, c := range sp.Changes {
		dst, err := t.abs(c.Path)
		if err != nil {
			return err
		}
		dirs[filepath.Dir(dst)] = true
		if c.Remove {
			if err := os.Remove(dst); err == nil {
				if err := t.op(); err != nil {
					return err
				}
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", dst, err)
			}
			continue
		}
		src := filepath.Join(st, c.Staged)
		if ok, err := Exists(src); err != nil {
			return err
		} else if !ok {
			continue
		}
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("write %s: %w", dst, err)
		}
		if err := syncDir(filepath.Dir(dst)); err != nil {
			return err
		}
		if err := t.op(); err != nil {
			return err
		}
	}
	if sp.Consume != "" {
		dir, err := t.abs(sp.Consume)
		if err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
		if err := t.op(); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(st); err != nil {
		return fmt.Errorf("remove %s: %w", st, err)
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// Recover completes or discards a transaction a crash interrupted. It
// reports what it did: "" (nothing to do), "completed" or "discarded".
func (t Txn) Recover() (string, error) {
	st := t.staging()
	ok, err := Exists(st)
	if err != nil || !ok {
		return "", err
	}
	committed, err := Exists(filepath.Join(st, commitMarker))
	if err != nil {
		return "", err
	}
	if !committed {
		if err := os.RemoveAll(st); err != nil {
			return "", fmt.Errorf("discard %s: %w", st, err)
		}
		return "discarded", syncDir(t.Root)
	}
	data, err := os.ReadFile(filepath.Join(st, planFile))
	if err != nil {
		return "", fmt.Errorf("recover %s: %w", st, err)
	}
	var sp stagedPlan
	if err := json.Unmarshal(data, &sp); err != nil {
		return "", fmt.Errorf("recover %s: %s: %w", st, planFile, err)
	}
	if err := t.rollForward(sp); err != nil {
		return "", fmt.Errorf("recover %s: %w", st, err)
	}
	return "completed", nil
}

// ReadBackup reads the manifest of a backup made by a Plan's BackupDir and
// returns it with the changes that restore the files it saved, byte for
// byte (removing those that did not exist).
func (t Txn) ReadBackup(dir string) (*BackupInfo, []Change, error) {
	mpath := filepath.Join(dir, BackupManifest)
	data, err := os.ReadFile(mpath)
	if err != nil {
		return nil, nil, fmt.Errorf("read backup: %w", err)
	}
	var info BackupInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", mpath, err)
	}
	var out []Change
	for _, e := range info.Files {
		dst, err := t.abs(e.Path)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", mpath, err)
		}
		if !e.Existed {
			out = append(out, Change{Path: dst, Remove: true})
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil {
			return nil, nil, fmt.Errorf("backup %s is incomplete: %w", dir, err)
		}
		out = append(out, Change{Path: dst, Data: data, Mode: e.Mode})
	}
	return &info, out, nil
}
