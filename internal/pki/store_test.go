package pki

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStoreEnsureCreatesOnceAndNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	s := Store{Dir: dir}
	in := testInputs(t)
	_, issued, err := s.Ensure(Table, in, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(issued) != len(Table) {
		t.Fatalf("issued %d, want %d", len(issued), len(Table))
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o", e.Name(), info.Mode().Perm())
		}
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}
	before := readAll(t, dir)

	_, issued, err = s.Ensure(Table, in, time.Now())
	if err != nil || len(issued) != 0 {
		t.Fatalf("second Ensure issued %v, err %v", issued, err)
	}
	assertSame(t, before, readAll(t, dir))

	// A missing pair is issued again, signed by the existing CA.
	os.Remove(s.CertPath("server"))
	os.Remove(s.KeyPath("server"))
	_, issued, err = s.Ensure(Table, in, time.Now())
	if err != nil || len(issued) != 1 || issued[0] != "server" {
		t.Fatalf("re-issue: %v %v", issued, err)
	}
}

func TestStoreEnsureRefusesBrokenState(t *testing.T) {
	in := testInputs(t)
	cases := []struct {
		name   string
		break_ func(s Store)
		want   string
	}{
		{"half pair", func(s Store) { os.Remove(s.KeyPath("server")) }, "server.crt exists but"},
		{"mismatched key", func(s Store) {
			data, _ := os.ReadFile(s.KeyPath("admin"))
			os.WriteFile(s.KeyPath("server"), data, 0o600)
		}, "does not match"},
		{"wrong signer", func(s Store) {
			for _, ext := range []string{".crt", ".key"} {
				data, _ := os.ReadFile(filepath.Join(s.Dir, "etcd-server"+ext))
				os.WriteFile(filepath.Join(s.Dir, "server"+ext), data, 0o600)
			}
		}, "not signed by"},
		{"garbage cert", func(s Store) { os.WriteFile(s.CertPath("ca"), []byte("junk"), 0o600) }, "ca.crt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Store{Dir: t.TempDir()}
			if _, _, err := s.Ensure(Table, in, time.Now()); err != nil {
				t.Fatal(err)
			}
			c.break_(s)
			before := readAll(t, s.Dir)
			_, _, err := s.Ensure(Table, in, time.Now())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want it to contain %q", err, c.want)
			}
			assertSame(t, before, readAll(t, s.Dir))
		})
	}
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(data)
	}
	return out
}

func assertSame(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("file count %d -> %d", len(before), len(after))
	}
	for name, data := range before {
		if after[name] != data {
			t.Errorf("%s changed", name)
		}
	}
}
