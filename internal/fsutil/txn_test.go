package fsutil

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var errCrash = errors.New("injected crash")

// crashAfter fails the n-th operation, like a kill at that point.
func crashAfter(n int) func() error {
	count := 0
	return func() error {
		count++
		if count == n {
			return errCrash
		}
		return nil
	}
}

var oldSet = map[string]string{
	"certs/a.crt":        "old a",
	"certs/b.key":        "old b",
	"credentials/c.conf": "old c",
}

var newSet = map[string]string{
	"certs/a.crt":        "new a",
	"certs/d.crt":        "new d", // did not exist
	"credentials/c.conf": "new c",
	// b.key removed
}

func setup(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for rel, data := range oldSet {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func plan(root string) Plan {
	return Plan{
		Changes: []Change{
			{Path: filepath.Join(root, "certs/a.crt"), Data: []byte("new a"), Mode: 0o600},
			{Path: filepath.Join(root, "certs/b.key"), Remove: true},
			{Path: filepath.Join(root, "certs/d.crt"), Data: []byte("new d"), Mode: 0o600},
			{Path: filepath.Join(root, "credentials/c.conf"), Data: []byte("new c"), Mode: 0o600},
		},
		BackupDir: filepath.Join(root, "certs-backup", "0001"),
		Note:      "test",
	}
}

// files maps every regular file under root/certs and root/credentials to
// its content.
func files(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range []string{"certs", "credentials"} {
		err := filepath.WalkDir(filepath.Join(root, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out[rel] = string(data)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// assertOldOrNew checks the all-or-nothing property after recovery and
// returns which set it found.
func assertOldOrNew(t *testing.T, root string) string {
	t.Helper()
	if ok, _ := Exists(filepath.Join(root, StagingDir)); ok {
		t.Fatal("staging dir left after recovery")
	}
	got := files(t, root)
	backup := filepath.Join(root, "certs-backup", "0001")
	hasBackup, _ := Exists(backup)
	switch {
	case maps.Equal(got, oldSet):
		if hasBackup {
			t.Fatal("old set but a backup was created")
		}
		return "old"
	case maps.Equal(got, newSet):
		if !hasBackup {
			t.Fatal("new set without its backup")
		}
		for rel, data := range oldSet {
			b, err := os.ReadFile(filepath.Join(backup, rel))
			if err != nil || string(b) != data {
				t.Fatalf("backup of %s: %q %v", rel, b, err)
			}
		}
		return "new"
	default:
		t.Fatalf("mixed set after recovery: %v", got)
		return ""
	}
}

func TestTxnCrashAtEveryPoint(t *testing.T) {
	sawOld, sawNew := false, false
	for n := 1; ; n++ {
		if n > 100 {
			t.Fatal("commit never completed")
		}
		root := setup(t)
		err := Txn{Root: root, AfterOp: crashAfter(n)}.Commit(plan(root), time.Now())
		if err == nil {
			if got := assertOldOrNew(t, root); got != "new" {
				t.Fatalf("completed commit left the %s set", got)
			}
			if !sawOld || !sawNew {
				t.Fatalf("crash points never left both outcomes (old %v, new %v)", sawOld, sawNew)
			}
			return
		}
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("op %d: %v", n, err)
		}
		// Recovery itself may crash, at any of its own operations.
		for m := 1; ; m++ {
			r := Txn{Root: root, AfterOp: crashAfter(m)}
			if _, err := r.Recover(); err == nil {
				break
			} else if !errors.Is(err, ErrInterrupted) {
				t.Fatalf("recover after op %d, crash %d: %v", n, m, err)
			}
		}
		switch assertOldOrNew(t, root) {
		case "old":
			sawOld = true
		case "new":
			sawNew = true
		}
	}
}

func TestTxnUndoRestoresBytes(t *testing.T) {
	root := setup(t)
	before := files(t, root)
	tx := Txn{Root: root}
	p := plan(root)
	if err := tx.Commit(p, time.Now()); err != nil {
		t.Fatal(err)
	}
	info, changes, err := tx.ReadBackup(p.BackupDir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Note != "test" || len(info.Files) != 4 {
		t.Errorf("manifest %+v", info)
	}
	if err := tx.Commit(Plan{Changes: changes, Consume: p.BackupDir}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := files(t, root); !maps.Equal(got, before) {
		t.Errorf("after undo %v, want %v", got, before)
	}
	if ok, _ := Exists(p.BackupDir); ok {
		t.Error("undo left its backup behind")
	}
	fi, err := os.Stat(filepath.Join(root, "certs/a.crt"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after undo: %v %v", fi, err)
	}
}

func TestTxnRefusesBadPlans(t *testing.T) {
	root := setup(t)
	cases := []struct {
		name string
		plan Plan
		want string
	}{
		{"outside root", Plan{Changes: []Change{{Path: "/etc/passwd", Data: []byte("x")}}}, "is not inside"},
		{"parent escape", Plan{Changes: []Change{{Path: filepath.Join(root, "../x"), Data: []byte("x")}}}, "is not inside"},
		{"into staging", Plan{Changes: []Change{{Path: filepath.Join(root, StagingDir, "x"), Data: []byte("x")}}}, "staging"},
		{"twice", Plan{Changes: []Change{{Path: filepath.Join(root, "certs/a.crt")}, {Path: filepath.Join(root, "certs/a.crt")}}}, "twice"},
		{"backup exists", Plan{Changes: []Change{{Path: filepath.Join(root, "certs/a.crt")}}, BackupDir: filepath.Join(root, "certs")}, "already exists"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Txn{Root: root}.Commit(c.plan, time.Now())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
			if got := files(t, root); !maps.Equal(got, oldSet) {
				t.Errorf("a refused plan changed files: %v", got)
			}
			if ok, _ := Exists(filepath.Join(root, StagingDir)); ok {
				t.Error("a refused plan left a staging dir")
			}
		})
	}
}

func TestTxnRefusesUnrecoveredStaging(t *testing.T) {
	root := setup(t)
	if err := (Txn{Root: root, AfterOp: crashAfter(3)}).Commit(plan(root), time.Now()); !errors.Is(err, ErrInterrupted) {
		t.Fatal(err)
	}
	err := Txn{Root: root}.Commit(plan(root), time.Now())
	if err == nil || !strings.Contains(err.Error(), "recover it first") {
		t.Fatalf("err %v", err)
	}
	what, err := Txn{Root: root}.Recover()
	if err != nil || what != "discarded" {
		t.Fatalf("recover: %q %v", what, err)
	}
	if what, err := (Txn{Root: root}).Recover(); what != "" || err != nil {
		t.Fatalf("second recover: %q %v", what, err)
	}
}
