package pki

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/util/cert"

	"github.com/kubeseed/kubeseed/internal/fsutil"
)

func pemEncode(w io.Writer, typ string, der []byte) error {
	return pem.Encode(w, &pem.Block{Type: typ, Bytes: der})
}

// Store is the certs/ directory.
type Store struct {
	Dir string
}

func (s Store) CertPath(name string) string { return filepath.Join(s.Dir, name+".crt") }
func (s Store) KeyPath(name string) string  { return filepath.Join(s.Dir, name+".key") }

// Load reads a spec's key and certificate.
func (s Store) Load(spec Spec) (*KeyPair, error) {
	return s.loadWith(spec, nil)
}

// LoadCert reads the first certificate of a PEM file.
func LoadCert(path string) (*x509.Certificate, error) {
	certs, err := cert.CertsFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs[0], nil
}

// Save writes key then certificate atomically, both 0600.
func (s Store) Save(spec Spec, kp *KeyPair) error {
	keyPEM, err := EncodeKey(kp.Key)
	if err != nil {
		return fmt.Errorf("%s: %w", spec.Name, err)
	}
	if err := fsutil.WriteFileAtomic(s.KeyPath(spec.Name), keyPEM, 0o600); err != nil {
		return err
	}
	if spec.KeyOnly {
		return nil
	}
	return fsutil.WriteFileAtomic(s.CertPath(spec.Name), EncodeCert(kp.Cert), 0o600)
}

// state is whether a spec's files exist: all, none, or only some.
func (s Store) state(spec Spec) (present, missing []string, err error) {
	paths := []string{s.KeyPath(spec.Name)}
	if !spec.KeyOnly {
		paths = append(paths, s.CertPath(spec.Name))
	}
	for _, p := range paths {
		ok, err := fsutil.Exists(p)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			present = append(present, p)
		} else {
			missing = append(missing, p)
		}
	}
	return present, missing, nil
}

// Ensure loads every certificate in table, issuing those whose files are
// all missing. It never overwrites a file: a half-present pair, a key that
// does not match its certificate, or a certificate its CA did not sign is
// an error and nothing more is written. It returns the names it issued.
func (s Store) Ensure(table []Spec, in Inputs, now time.Time) (map[string]*KeyPair, []string, error) {
	for _, spec := range table {
		present, missing, err := s.state(spec)
		if err != nil {
			return nil, nil, err
		}
		if len(present) > 0 && len(missing) > 0 {
			return nil, nil, fmt.Errorf("%s exists but %s is missing: restore it, or remove %s to have it issued again",
				present[0], missing[0], present[0])
		}
	}
	loaded := map[string]*KeyPair{}
	var issued []string
	for _, spec := range table {
		_, missing, err := s.state(spec)
		if err != nil {
			return nil, nil, err
		}
		ca := loaded[spec.CA]
		if len(missing) == 0 {
			kp, err := s.Load(spec)
			if err != nil {
				return nil, nil, err
			}
			if err := Verify(spec, kp, ca); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", s.Dir, err)
			}
			loaded[spec.Name] = kp
			continue
		}
		kp, err := Issue(spec, in, ca, now)
		if err != nil {
			return nil, nil, err
		}
		if err := s.Save(spec, kp); err != nil {
			return nil, nil, err
		}
		loaded[spec.Name] = kp
		issued = append(issued, spec.Name)
	}
	return loaded, issued, nil
}

// LoadPair reads a certificate (the first of its PEM file) and its key
// from any paths, such as those an args file names.
func LoadPair(certFile, keyFile string) (*KeyPair, error) {
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	c, err := LoadCert(certFile)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(c.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%s does not match the key in %s", certFile, keyFile)
	}
	return &KeyPair{Cert: c, Key: key}, nil
}
