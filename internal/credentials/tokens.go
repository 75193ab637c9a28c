package credentials

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// Token is one line of a static token file (kube-apiserver's
// --token-auth-file): token,user,uid[,"group1,group2"].
type Token struct {
	Token  string
	User   string
	UID    string
	Groups []string
	Line   int // 1-based; 0 when not parsed from a file
}

// DigestPrefix marks a token column that holds the token's SHA-256 digest
// (64 hex digits) rather than the token: kubeseed's auth webhook is the only
// verifier of this file, so it need not keep the secret itself.
const DigestPrefix = "sha256:"

// HashToken returns the form of secret that `kubeseed token add` stores.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return DigestPrefix + hex.EncodeToString(sum[:])
}

// Digest returns the SHA-256 digest a presented token must have to match t.
// t must come from ParseTokens, which checks a stored digest's form.
func (t Token) Digest() [sha256.Size]byte {
	var sum [sha256.Size]byte
	if d, ok := strings.CutPrefix(t.Token, DigestPrefix); ok {
		_, _ = hex.Decode(sum[:], []byte(d))
		return sum
	}
	return sha256.Sum256([]byte(t.Token))
}

// ParseTokens parses a static token file; path is used only in errors.
// Errors never include a token value, since tokens are secrets.
//
// kube-apiserver reads this file itself and has no comment syntax (a "#"
// line with enough commas would even become a token), so comments are
// rejected rather than skipped.
func ParseTokens(path string, data []byte) ([]Token, error) {
	var tokens []Token
	firstLine := map[[sha256.Size]byte]int{} // token digest -> line of its first occurrence
	err := readRecords(path, data, tokenFormat, func(rec []string, line func(int) int) error {
		t := Token{Token: rec[0], User: rec[1], UID: rec[2], Line: line(0)}
		switch {
		case t.Token == "":
			return fmt.Errorf("%s:%d: empty token", path, t.Line)
		case strings.IndexFunc(t.Token, unicode.IsSpace) >= 0:
			return fmt.Errorf("%s:%d: token contains whitespace", path, t.Line)
		case hasControl(t.Token):
			return fmt.Errorf("%s:%d: token contains a control character", path, t.Line)
		}
		if d, ok := strings.CutPrefix(t.Token, DigestPrefix); ok {
			if _, err := hex.DecodeString(d); err != nil || len(d) != 2*sha256.Size {
				return fmt.Errorf("%s:%d: a %s token digest must be %d hex digits", path, t.Line, DigestPrefix, 2*sha256.Size)
			}
		}
		if err := checkIdentity(path, rec, line); err != nil {
			return err
		}
		if first, dup := firstLine[t.Digest()]; dup {
			return fmt.Errorf("%s:%d: duplicate token (first defined on line %d)", path, t.Line, first)
		}
		firstLine[t.Digest()] = t.Line
		groups, err := groupsColumn(path, rec, line)
		if err != nil {
			return err
		}
		t.Groups = groups
		tokens = append(tokens, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tokens, nil
}

// csvFormat describes a credentials CSV file in errors.
type csvFormat struct {
	header     string // the columns
	commentWhy string // why a "#" line is not a comment
}

var tokenFormat = csvFormat{
	header:     "token,user,uid[,groups]",
	commentWhy: "kube-apiserver reads every line as a token",
}

// readRecords reads a credentials CSV file of 3 or 4 columns and hands each
// record to fn with a function giving the line of a field. Errors carry
// path:line.
func readRecords(path string, data []byte, f csvFormat, fn func(rec []string, line func(int) int) error) error {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return fmt.Errorf("%s:%d: column %d: %w", path, pe.Line, pe.Column, pe.Err)
			}
			return fmt.Errorf("%s: %w", path, err)
		}
		line := func(field int) int {
			l, _ := r.FieldPos(field)
			return l
		}
		if strings.HasPrefix(rec[0], "#") {
			return fmt.Errorf("%s:%d: comments are not allowed: %s", path, line(0), f.commentWhy)
		}
		if n := len(rec); n < 3 || n > 4 {
			return fmt.Errorf("%s:%d: expected 3 or 4 columns (%s), got %d", path, line(0), f.header, n)
		}
		if err := fn(rec, line); err != nil {
			return err
		}
	}
}

// checkIdentity validates the user and uid columns.
func checkIdentity(path string, rec []string, line func(int) int) error {
	switch {
	case rec[1] == "":
		return fmt.Errorf("%s:%d: empty user", path, line(1))
	case hasControl(rec[1]):
		return fmt.Errorf("%s:%d: user contains a control character", path, line(1))
	case hasControl(rec[2]):
		return fmt.Errorf("%s:%d: uid contains a control character", path, line(2))
	}
	return nil
}

// groupsColumn parses the optional fourth column.
func groupsColumn(path string, rec []string, line func(int) int) ([]string, error) {
	if len(rec) < 4 {
		return nil, nil
	}
	groups, err := parseGroups(rec[3])
	if err != nil {
		return nil, fmt.Errorf("%s:%d: %w", path, line(3), err)
	}
	return groups, nil
}

// hasControl reports a control character. Besides being meaningless in a
// name, a CR would not survive a CSV round trip (encoding/csv turns a quoted
// CRLF into LF).
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// parseGroups splits the groups column. An empty column is rejected too:
// kube-apiserver would turn it into a group named "".
func parseGroups(col string) ([]string, error) {
	groups := strings.Split(col, ",")
	for i, g := range groups {
		if g == "" {
			return nil, fmt.Errorf("groups column %q: group %d is empty", col, i+1)
		}
		if hasControl(g) {
			return nil, fmt.Errorf("groups column: group %d contains a control character", i+1)
		}
		if strings.TrimSpace(g) != g {
			return nil, fmt.Errorf("groups column %q: group %q has leading or trailing whitespace", col, g)
		}
	}
	return groups, nil
}

// FormatTokens renders tokens in the format ParseTokens reads. The groups
// column is written only when there are groups.
func FormatTokens(tokens []Token) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	for _, t := range tokens {
		rec := []string{t.Token, t.User, t.UID}
		if len(t.Groups) > 0 {
			rec = append(rec, strings.Join(t.Groups, ","))
		}
		// Writes to a bytes.Buffer with the default delimiter cannot fail.
		_ = w.Write(rec)
	}
	w.Flush()
	return b.Bytes()
}
