package jointoken

import (
	"regexp"
	"strings"
	"testing"
)

// secretLike is a run of text that could be a secret; no error message
// may contain one taken from the input.
var secretLike = regexp.MustCompile(`[a-z0-9]{16,}`)

// checkNoEcho fails if err repeats a secret-like run that follows a "." in
// the input.
func checkNoEcho(t *testing.T, in string, err error) {
	t.Helper()
	for _, part := range strings.Split(in, ".")[1:] {
		for _, run := range secretLike.FindAllString(part, -1) {
			if strings.Contains(err.Error(), run) {
				t.Fatalf("error %q repeats %q from the input", err, run)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"abcdef.0123456789abcdefghijklmnopqrstuv",
		" k7x2pq.zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\n",
		"abcdef0123456789abcdefghijklmnopqrstuv",
		"abcdef.0123456789abcdefghijklmnopqrstu",
		"ABCDEF.0123456789abcdefghijklmnopqrstuv",
		"abcdef.0123456789abcdefghijklmnopqrst.v",
		".", "", "é.é",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			checkNoEcho(t, s, err)
			return
		}
		if len(tok.ID) != idLen || len(tok.Secret) != secretLen {
			t.Fatalf("Parse(%q) = %#v: wrong lengths", s, tok)
		}
		again, err := Parse(tok.String())
		if err != nil || again != tok {
			t.Fatalf("Parse(%q) = %#v, but its String re-parses to %#v, %v", s, tok, again, err)
		}
	})
}

func FuzzParseJoinAddress(f *testing.F) {
	tok := "k7x2pq." + testSecret
	for _, s := range []string{
		"198.18.0.11:25000/" + tok + "/" + testHash,
		"[fd00::1]:25000/" + tok + "/" + testHash,
		"[fe80::1%eth0]:25000/" + tok + "/" + testHash,
		"[::ffff:198.18.0.11]:25000/" + tok + "/" + testHash,
		"[198.18.0.11]:25000/" + tok + "/" + testHash,
		"cp1.example.com:0025000/" + tok + "/" + strings.ToUpper(testHash),
		"fd00::1:25000/" + tok + "/" + testHash,
		"198.18.0.11:65536/" + tok + "/" + testHash,
		tok + "/198.18.0.11:25000/" + testHash,
		"198.18.0.11:25000/" + tok + "/" + testHash[:63],
		"//", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseJoinAddress(s)
		if err != nil {
			checkNoEcho(t, s, err)
			return
		}
		again, err := ParseJoinAddress(j.String())
		if err != nil || again != j {
			t.Fatalf("ParseJoinAddress(%q) = %+v, but its String %q re-parses to %+v, %v", s, j, j.String(), again, err)
		}
		if _, err := ParseCAHash(j.CAHash); err != nil || strings.ToLower(j.CAHash) != j.CAHash {
			t.Fatalf("ParseJoinAddress(%q): CA hash %q not normalised", s, j.CAHash)
		}
	})
}
