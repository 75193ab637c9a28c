package credentials

import (
	"reflect"
	"strings"
	"testing"
)

const tokensPath = "/x/credentials/known_tokens.csv"

func TestParseTokens(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Token
	}{
		{"empty", "", nil},
		{"blank lines", "\n\n\n", nil},
		{"three columns", "s3cr3t,admin,admin\n", []Token{
			{Token: "s3cr3t", User: "admin", UID: "admin", Line: 1},
		}},
		{"groups", "\n\ns3cr3t,admin,admin,\"system:masters,devs\"\n", []Token{
			{Token: "s3cr3t", User: "admin", UID: "admin", Groups: []string{"system:masters", "devs"}, Line: 3},
		}},
		{"single group unquoted", "t1,u,1,g\n", []Token{
			{Token: "t1", User: "u", UID: "1", Groups: []string{"g"}, Line: 1},
		}},
		{"empty uid allowed", "t1,u,\n", []Token{{Token: "t1", User: "u", Line: 1}}},
		{"no trailing newline and crlf", "t1,u,1\r\nt2,v,2", []Token{
			{Token: "t1", User: "u", UID: "1", Line: 1},
			{Token: "t2", User: "v", UID: "2", Line: 2},
		}},
		{"user with spaces", "t1,\"Jane Doe\",1\n", []Token{
			{Token: "t1", User: "Jane Doe", UID: "1", Line: 1},
		}},
		{"non-ASCII names", "t1,jörg,üid,\"grüppe,组\"\n", []Token{
			{Token: "t1", User: "jörg", UID: "üid", Groups: []string{"grüppe", "组"}, Line: 1},
		}},
		{"stored digest", digestOfT1 + ",u,u\n", []Token{{Token: digestOfT1, User: "u", UID: "u", Line: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokens(tokensPath, []byte(tt.in))
			if err != nil {
				t.Fatalf("ParseTokens: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseTokensErrors(t *testing.T) {
	const secret = "SECRETVALUE"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"comment line", "t,u,1\n# token,user,uid\n", tokensPath + ":2: comments are not allowed: kube-apiserver reads every line as a token"},
		{"too few columns", "t,u,1\n" + secret + ",admin\n", tokensPath + ":2: expected 3 or 4 columns (token,user,uid[,groups]), got 2"},
		{"too many columns", secret + ",u,1,g,x\n", tokensPath + ":1: expected 3 or 4 columns (token,user,uid[,groups]), got 5"},
		{"whitespace-only line", "t,u,1\n  \n", tokensPath + ":2: expected 3 or 4 columns (token,user,uid[,groups]), got 1"},
		{"empty token", ",u,1\n", tokensPath + ":1: empty token"},
		{"empty user", secret + ",,1\n", tokensPath + ":1: empty user"},
		{"duplicate", "\n" + secret + ",a,1\nother,b,2\n" + secret + ",c,3\n", tokensPath + ":4: duplicate token (first defined on line 2)"},
		{"token with space", "SECRET VALUE,u,1\n", tokensPath + ":1: token contains whitespace"},
		{"token with leading space", " " + secret + ",u,1\n", tokensPath + ":1: token contains whitespace"},
		{"token with tab", secret + "\t,u,1\n", tokensPath + ":1: token contains whitespace"},
		{"token with newline", "\"SECRET\nVALUE\",u,1\n", tokensPath + ":1: token contains whitespace"},
		{"token with control char", secret + "\x00,u,1\n", tokensPath + ":1: token contains a control character"},
		{"user with newline", "t,u,1\n" + secret + ",\"a\nb\",1\n", tokensPath + ":2: user contains a control character"},
		{"uid with cr", secret + ",u,\"1\r\"\n", tokensPath + ":1: uid contains a control character"},
		{"group with newline", secret + ",u,1,\"a,\nb\"\n", tokensPath + ":1: groups column: group 2 contains a control character"},
		{"empty group", secret + ",u,1,\"a,,b\"\n", tokensPath + ":1: groups column \"a,,b\": group 2 is empty"},
		{"empty groups column", secret + ",u,1,\n", tokensPath + ":1: groups column \"\": group 1 is empty"},
		{"trailing comma in groups", secret + ",u,1,\"a,\"\n", tokensPath + ":1: groups column \"a,\": group 2 is empty"},
		{"group with space", secret + ",u,1,\"a, b\"\n", tokensPath + ":1: groups column \"a, b\": group \" b\" has leading or trailing whitespace"},
		{"digest and its token", "\n" + digestOfT1 + ",a,1\nt1,b,2\n", tokensPath + ":3: duplicate token (first defined on line 2)"},
		{"digest too short", "sha256:abcd,u,1\n", tokensPath + ":1: a sha256: token digest must be 64 hex digits"},
		{"digest not hex", "sha256:" + strings.Repeat("g", 64) + ",u,1\n", tokensPath + ":1: a sha256: token digest must be 64 hex digits"},
		{"bare quote", "t,u,1\n" + secret + ",u\"x,1\n", tokensPath + ":2: column 14: bare \" in non-quoted-field"},
		{"unterminated quote", "t,u,1\n\"" + secret + ",u,1\n", tokensPath + ":2: column 18: extraneous or missing \" in quoted-field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokens(tokensPath, []byte(tt.in))
			if err == nil {
				t.Fatalf("ParseTokens succeeded with %+v, want error %q", got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q\nwant    %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error leaks the token: %q", err)
			}
		})
	}
}

// digestOfT1 is the stored form of the token "t1": sha256("t1").
const digestOfT1 = "sha256:628b49d96dcde97a430dd4f597705899e09a968f793491e4b704cae33a40dc02"

func TestTokenDigest(t *testing.T) {
	if got := HashToken("t1"); got != digestOfT1 {
		t.Fatalf("HashToken(t1) = %s, want %s", got, digestOfT1)
	}
	plain, stored := Token{Token: "t1"}, Token{Token: digestOfT1}
	if plain.Digest() != stored.Digest() {
		t.Error("a token and its stored digest have different digests")
	}
	if (Token{Token: "t2"}).Digest() == stored.Digest() {
		t.Error("another token matches the stored digest")
	}
}

func TestFormatTokens(t *testing.T) {
	tests := []struct {
		name   string
		tokens []Token
		want   string
	}{
		{"none", nil, ""},
		{"three columns", []Token{{Token: "t1", User: "admin", UID: "admin", Line: 7}}, "t1,admin,admin\n"},
		{"empty groups omitted", []Token{{Token: "t1", User: "u", UID: "1", Groups: []string{}}}, "t1,u,1\n"},
		{"one group", []Token{{Token: "t1", User: "u", UID: "1", Groups: []string{"g"}}}, "t1,u,1,g\n"},
		{"groups quoted", []Token{
			{Token: "t1", User: "admin", UID: "admin", Groups: []string{"system:masters", "devs"}},
			{Token: "t2", User: "Jane Doe", UID: "", Groups: nil},
		}, "t1,admin,admin,\"system:masters,devs\"\nt2,Jane Doe,\n"},
		{"quotes escaped", []Token{{Token: `a"b`, User: "u,v", UID: "1"}}, "\"a\"\"b\",\"u,v\",1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(FormatTokens(tt.tokens))
			if got != tt.want {
				t.Fatalf("FormatTokens = %q, want %q", got, tt.want)
			}
			back, err := ParseTokens(tokensPath, []byte(got))
			if err != nil {
				t.Fatalf("ParseTokens(FormatTokens): %v", err)
			}
			if !sameTokens(back, tt.tokens) {
				t.Errorf("round trip: got %+v, want %+v", back, tt.tokens)
			}
		})
	}
}

// sameTokens compares tokens ignoring Line and nil-versus-empty Groups.
func sameTokens(a, b []Token) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Token != y.Token || x.User != y.User || x.UID != y.UID || len(x.Groups) != len(y.Groups) {
			return false
		}
		for j := range x.Groups {
			if x.Groups[j] != y.Groups[j] {
				return false
			}
		}
	}
	return true
}

func FuzzParseTokens(f *testing.F) {
	seeds := []string{
		"",
		"s3cr3t,admin,admin,\"system:masters\"\n",
		"# kubeseed static tokens\nabc,admin,admin,\"system:masters,devs\"\ndef,kubelet,kubelet-0,system:nodes\n",
		"t1,\"Jane Doe\",1\r\nt2,u,\r\n",
		"\"a\"\"b\",\"u,v\",1\n",
		"t,\"multi\nline\",1\n",
		"t,u,1,\"a,,b\"\n",
		"\"#x\",u,1\n",
		digestOfT1 + ",u,1\nt1,v,2\n",
		"sha256:zz,u,1\n",
		",u,1\n",
		"t,u\"x,1\n",
		// A quoted CR before CRLF once broke the round trip.
		"\"0\",\"\r\r\n\",",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tokens, err := ParseTokens(tokensPath, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), tokensPath+":") {
				t.Fatalf("error without path:line: %v", err)
			}
			return
		}
		seen := map[[32]byte]bool{} // by digest: a token and its digest are one token
		for _, tok := range tokens {
			if tok.Token == "" || tok.User == "" || tok.Line < 1 || seen[tok.Digest()] {
				t.Fatalf("accepted invalid token %+v", tok)
			}
			seen[tok.Digest()] = true
		}
		out := FormatTokens(tokens)
		back, err := ParseTokens(tokensPath, out)
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", out, data, err)
		}
		if !sameTokens(back, tokens) {
			t.Fatalf("round trip of %q via %q:\ngot  %+v\nwant %+v", data, out, back, tokens)
		}
	})
}
