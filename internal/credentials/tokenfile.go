package credentials

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// TokenFile is credentials/known_tokens.csv. Its edits are
// read-modify-write under an exclusive lock on the credentials directory,
// so two concurrent `kubeseed token` commands cannot lose each other's
// changes. Every write is atomic: the token webhook never reads half a file.
type TokenFile struct {
	Path string
}

// Load reads and validates the file.
func (f TokenFile) Load() ([]Token, error) {
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist; start the node once (`kubeseed start`) to create it", f.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	return ParseTokens(f.Path, data)
}

// Update applies edit to the parsed tokens and writes the result. A file
// that does not parse is reported (path:line) and left as it is.
func (f TokenFile) Update(edit func([]Token) ([]Token, error)) error {
	unlock, err := lockDir(filepath.Dir(f.Path))
	if err != nil {
		return err
	}
	defer unlock()
	tokens, err := f.Load()
	if err != nil {
		return err
	}
	out, err := edit(tokens)
	if err != nil {
		return err
	}
	data := FormatTokens(out)
	// Re-parse what we are about to write, so a bug here can never leave
	// a file the webhook would refuse.
	if _, err := ParseTokens(f.Path, data); err != nil {
		return fmt.Errorf("refusing to write an invalid token file: %w", err)
	}
	return fsutil.WriteFileAtomic(f.Path, data, 0o600)
}

// Add gives user a new random token with the given groups and returns it.
// The file keeps only the token's digest, so the caller shows the token
// once. The uid is the user name, as in MicroK8s's token file.
func (f TokenFile) Add(user string, groups []string) (string, error) {
	tok, err := NewToken()
	if err != nil {
		return "", err
	}
	err = f.Update(func(tokens []Token) ([]Token, error) {
		return append(tokens, Token{Token: HashToken(tok), User: user, UID: user, Groups: groups}), nil
	})
	if err != nil {
		return "", err
	}
	return tok, nil
}

// Remove deletes every token of user and returns them. A user without
// tokens is an error and nothing is written.
func (f TokenFile) Remove(user string) ([]Token, error) {
	var removed []Token
	err := f.Update(func(tokens []Token) ([]Token, error) {
		var keep []Token
		for _, t := range tokens {
			if t.User == user {
				removed = append(removed, t)
				continue
			}
			keep = append(keep, t)
		}
		if len(removed) == 0 {
			return nil, fmt.Errorf("%s has no token for user %q; see `kubeseed token list`", f.Path, user)
		}
		return keep, nil
	})
	return removed, err
}

// lockDir takes an exclusive flock on dir until unlock is called.
func lockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		d.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() {
		_ = syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
		d.Close()
	}, nil
}
