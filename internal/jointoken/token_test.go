package jointoken

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var tokenRE = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{32}$`)

func TestNewParseRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		tok, err := New()
		if err != nil {
			t.Fatal(err)
		}
		s := tok.String()
		if !tokenRE.MatchString(s) {
			t.Fatalf("New made %q, want 6.32 characters of a-z0-9", s)
		}
		if seen[tok.Secret] {
			t.Fatalf("New repeated a secret")
		}
		seen[tok.Secret] = true
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(New().String()): %v", err)
		}
		if got != tok {
			t.Fatalf("round trip: got %#v, want %#v", got, tok)
		}
	}
}

// TestNewUsesWholeAlphabet: a draw that skipped characters (a bad
// rejection bound) would weaken the secret.
func TestNewUsesWholeAlphabet(t *testing.T) {
	counts := map[rune]int{}
	for range 300 {
		tok, err := New()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range tok.Secret {
			counts[c]++
		}
	}
	// 9600 draws, 36 characters: about 267 each.
	for _, c := range alphabet {
		if n := counts[c]; n < 150 || n > 400 {
			t.Errorf("character %q drawn %d times of 9600, want about 267", c, n)
		}
	}
}

func TestParseBad(t *testing.T) {
	const secret = "0123456789abcdefghijklmnopqrstuv"
	cases := []struct {
		in, want string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"abcdef" + secret, `no "."`},
		{"abcde." + secret, "id has 5 characters, not 6"},
		{"abcdefg." + secret, "id has 7 characters, not 6"},
		{"ABCDEF." + secret, "id has a character other than a-z, 0-9 at position 1"},
		{"abc-ef." + secret, "position 4"},
		{"abcdef." + secret[:31], "secret has 31 characters, not 32"},
		{"abcdef." + secret + "w", "secret has 33 characters, not 32"},
		{"abcdef." + secret[:31] + "X", "secret has a character other than a-z, 0-9 at position 32"},
		{"abcdef." + secret[:20] + "." + secret[21:], "secret has a character other than"},
		{"abcdef.", "secret has 0 characters"},
	}
	for _, c := range cases {
		_, err := Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q): no error", c.in)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %q, want it to say %q", c.in, err, c.want)
		}
		if !strings.Contains(err.Error(), "<id>.<secret>") {
			t.Errorf("Parse(%q) = %q, want the expected form", c.in, err)
		}
		if strings.Contains(err.Error(), secret[:16]) {
			t.Errorf("Parse(%q) = %q repeats the secret", c.in, err)
		}
	}
}

func TestParseTrimsSpace(t *testing.T) {
	tok, err := Parse(" abcdef.0123456789abcdefghijklmnopqrstuv\n")
	if err != nil || tok.ID != "abcdef" || tok.Secret != "0123456789abcdefghijklmnopqrstuv" {
		t.Fatalf("got %#v, %v", tok, err)
	}
}

func TestSecretStaysOutOfLogs(t *testing.T) {
	tok := Token{ID: "abcdef", Secret: "0123456789abcdefghijklmnopqrstuv"}
	for _, s := range []string{
		fmt.Sprintf("%#v", tok),
		fmt.Sprint(tok.LogValue()),
		fmt.Sprint(tok.MarshalLog()),
	} {
		if strings.Contains(s, tok.Secret) || !strings.Contains(s, tok.ID) {
			t.Errorf("%q: want the id and not the secret", s)
		}
	}
}

func TestParseRole(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Role
		ok   bool
	}{
		{"worker", Worker, true},
		{"control-plane", ControlPlane, true},
		{"", "", false},
		{"Worker", "", false},
		{"controlplane", "", false},
	} {
		got, err := ParseRole(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseRole(%q) = %q, %v", c.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), `"worker" or "control-plane"`) {
			t.Errorf("ParseRole(%q) = %v: want the valid roles named", c.in, err)
		}
	}
}
