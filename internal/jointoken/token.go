// Package jointoken mints, parses and stores the join tokens of
// `kubeseed add-node` and `kubeseed join`. A token is id.secret: the id is
// public and names the record in etcd, the secret is shown once and only its
// SHA-256 digest is stored. A join reserves one use of a token and consumes
// it only when the join completes, so a failed join does not burn a token
// and single use holds across every control plane sharing the etcd.
package jointoken

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Role is what a token lets the joiner become. A token admits one role
// only: the server decides, not the joiner, so a worker token can never
// fetch the CA keys a control plane receives.
type Role string

const (
	Worker       Role = "worker"
	ControlPlane Role = "control-plane"
)

// ParseRole accepts the role names add-node and join use.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Worker, ControlPlane:
		return r, nil
	}
	return "", fmt.Errorf("join token role %q: want %q or %q", s, Worker, ControlPlane)
}

func (r Role) valid() bool { return r == Worker || r == ControlPlane }

const (
	alphabet  = "abcdefghijklmnopqrstuvwxyz0123456789"
	idLen     = 6
	secretLen = 32 // 32*log2(36) ≈ 165 bits
)

// Token is id.secret. The id is public (listed, logged); the secret is
// never stored or logged.
type Token struct {
	ID     string
	Secret string
}

// New mints a token from crypto/rand.
func New() (Token, error) {
	id, err := randomString(idLen)
	if err != nil {
		return Token{}, fmt.Errorf("mint join token id: %w", err)
	}
	secret, err := randomString(secretLen)
	if err != nil {
		return Token{}, fmt.Errorf("mint join token secret: %w", err)
	}
	return Token{ID: id, Secret: secret}, nil
}

// randomString draws n characters of alphabet uniformly: bytes at or above
// the largest multiple of 36 are rejected, so there is no modulo bias.
func randomString(n int) (string, error) {
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

const tokenForm = "<id>.<secret>: 6 and 32 characters of a-z and 0-9"

// Parse reads id.secret. Errors say which part is wrong but never repeat
// the secret, nor any text that might be one.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, fmt.Errorf("join token is empty: want %s", tokenForm)
	}
	id, secret, ok := strings.Cut(s, ".")
	if !ok {
		return Token{}, fmt.Errorf("join token has no \".\": want %s", tokenForm)
	}
	if err := checkPart(id, idLen); err != nil {
		return Token{}, fmt.Errorf("join token id %s: want %s", err, tokenForm)
	}
	if err := checkPart(secret, secretLen); err != nil {
		return Token{}, fmt.Errorf("join token %s: secret %s: want %s", id, err, tokenForm)
	}
	return Token{ID: id, Secret: secret}, nil
}

// checkPart describes what is wrong with a part without quoting it.
func checkPart(p string, n int) error {
	if len(p) != n {
		return fmt.Errorf("has %d characters, not %d", len(p), n)
	}
	for i := 0; i < len(p); i++ {
		if !strings.ContainsRune(alphabet, rune(p[i])) {
			return fmt.Errorf("has a character other than a-z, 0-9 at position %d", i+1)
		}
	}
	return nil
}

func validID(id string) bool { return checkPart(id, idLen) == nil }

// String is the full id.secret, for add-node to print once.
func (t Token) String() string { return t.ID + "." + t.Secret }

// GoString keeps the secret out of %#v, as in test failures.
func (t Token) GoString() string {
	return "jointoken.Token{ID:" + strconv.Quote(t.ID) + ", Secret:<redacted>}"
}

// LogValue keeps the secret out of slog output.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.ID) }

// MarshalLog keeps the secret out of logr/klog structured output.
func (t Token) MarshalLog() any { return t.ID }
