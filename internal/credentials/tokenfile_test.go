package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newTokenFile(t *testing.T, content string) TokenFile {
	t.Helper()
	f := TokenFile{Path: filepath.Join(t.TempDir(), "known_tokens.csv")}
	if err := os.WriteFile(f.Path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestTokenFileAddRemove(t *testing.T) {
	f := newTokenFile(t, "admintoken,admin,admin,system:masters\n")
	tok, err := f.Add("bob", []string{"devs", "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 {
		t.Errorf("token %d characters, want 43 (256 bits, base64url)", len(tok))
	}
	tok2, err := f.Add("bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok == tok2 {
		t.Fatal("two tokens are equal")
	}
	tokens, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := []Token{
		{Token: "admintoken", User: "admin", UID: "admin", Groups: []string{"system:masters"}},
		{Token: HashToken(tok), User: "bob", UID: "bob", Groups: []string{"devs", "ops"}},
		{Token: HashToken(tok2), User: "bob", UID: "bob"},
	}
	if !sameTokens(tokens, want) {
		t.Fatalf("tokens %+v, want %+v", tokens, want)
	}
	data, _ := os.ReadFile(f.Path)
	if strings.Contains(string(data), tok) || strings.Contains(string(data), tok2) {
		t.Errorf("the token file holds a token added with Add, not only its digest:\n%s", data)
	}
	if st, _ := os.Stat(f.Path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %o, want 600", st.Mode().Perm())
	}
	removed, err := f.Remove("bob")
	if err != nil || !sameTokens(removed, want[1:]) {
		t.Fatalf("Remove = %+v, %v; want bob's 2 tokens", removed, err)
	}
	if tokens, _ = f.Load(); !sameTokens(tokens, want[:1]) {
		t.Fatalf("after remove: %+v", tokens)
	}
}

func TestTokenFileErrorsChangeNothing(t *testing.T) {
	const broken = "admintoken,admin,admin\nonlyonecolumn\n"
	tests := []struct {
		name    string
		content string
		op      func(TokenFile) error
		want    string
	}{
		{"add to an invalid file", broken, func(f TokenFile) error { _, err := f.Add("bob", nil); return err },
			"known_tokens.csv:2: expected 3 or 4 columns"},
		{"remove from an invalid file", broken, func(f TokenFile) error { _, err := f.Remove("admin"); return err },
			"known_tokens.csv:2: expected 3 or 4 columns"},
		{"remove an unknown user", "admintoken,admin,admin\n", func(f TokenFile) error { _, err := f.Remove("bob"); return err },
			`has no token for user "bob"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTokenFile(t, tt.content)
			err := tt.op(f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			data, _ := os.ReadFile(f.Path)
			if string(data) != tt.content {
				t.Errorf("file changed to %q", data)
			}
		})
	}
}

func TestTokenFileMissing(t *testing.T) {
	f := TokenFile{Path: filepath.Join(t.TempDir(), "known_tokens.csv")}
	if _, err := f.Add("bob", nil); err == nil || !strings.Contains(err.Error(), "kubeseed start") {
		t.Fatalf("Add to a missing file: %v", err)
	}
	if _, err := os.Stat(f.Path); !os.IsNotExist(err) {
		t.Errorf("Add created the file: %v", err)
	}
}

func TestTokenFileConcurrentAdds(t *testing.T) {
	f := newTokenFile(t, "")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Add("user"+string(rune('a'+i)), nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	tokens, err := f.Load()
	if err != nil || len(tokens) != 8 {
		t.Fatalf("%d tokens after 8 concurrent adds (%v)", len(tokens), err)
	}
}
