package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/cert"

	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// kubeconfigChanges rewrites the kubeconfigs under credentials/ (users/
// included, where add-user writes them) whose inline data holds a
// certificate that changes: a replaced CA, a re-issued table certificate,
// or a client certificate a replaced CA signed (a user's, re-signed with a
// new key when its key is inline). Kubeconfigs that reference files under
// certs/ need no change.
func (m Manager) kubeconfigChanges(old, updated map[string]*KeyPair, now time.Time) ([]fsutil.Change, error) {
	dir := m.Layout.CredentialsDir()
	ours := map[string]bool{}
	var leaves, cas []Spec
	for _, s := range Table {
		if s.Kubeconfig != "" {
			ours[s.Kubeconfig] = true
		}
		if _, ok := updated[s.Name]; ok {
			if s.IsCA() {
				cas = append(cas, s)
			} else {
				leaves = append(leaves, s)
			}
		}
	}
	var paths []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		name := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(name, ".config") || strings.HasSuffix(name, ".kubeconfig")) {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []fsutil.Change
	for _, path := range paths {
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return nil, err
		}
		own := ours[rel] // only table kubeconfigs must parse; others may be anything
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		cfg, err := clientcmd.Load(data)
		if err != nil {
			if own {
				return nil, fmt.Errorf("%s: %w; restore it (`kubeseed refresh-certs --undo`) or delete it and restart the node to have it written again", path, err)
			}
			continue // not a kubeconfig
		}
		changed := false
		for _, cl := range cfg.Clusters {
			if len(cl.CertificateAuthorityData) == 0 {
				continue
			}
			certs, err := cert.ParseCertsPEM(cl.CertificateAuthorityData)
			if err != nil {
				if own {
					return nil, fmt.Errorf("%s: certificate-authority-data: %w", path, err)
				}
				continue
			}
			var b bytes.Buffer
			swapped := false
			for _, c := range certs {
				for _, s := range cas {
					if c.Equal(old[s.Name].Cert) {
						c, swapped = updated[s.Name].Cert, true
						break
					}
				}
				b.Write(EncodeCert(c))
			}
			if swapped {
				cl.CertificateAuthorityData, changed = b.Bytes(), true
			}
		}
		for _, ai := range cfg.AuthInfos {
			if len(ai.ClientCertificateData) == 0 {
				continue
			}
			certs, err := cert.ParseCertsPEM(ai.ClientCertificateData)
			if err != nil {
				if own {
					return nil, fmt.Errorf("%s: client-certificate-data: %w", path, err)
				}
				continue
			}
			c, key, err := m.replacement(certs[0], len(ai.ClientKeyData) > 0, old, updated, leaves, cas, now)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if c != nil {
				ai.ClientCertificateData, changed = EncodeCert(c), true
			}
			if key != nil {
				if ai.ClientKeyData, err = EncodeKey(key); err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
			}
		}
		if !changed {
			continue
		}
		out2, err := clientcmd.Write(*cfg)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", path, err)
		}
		out = append(out, fsutil.Change{Path: path, Data: out2, Mode: 0o600})
	}
	return out, nil
}

// replacement is the certificate that takes c's place, or nil if c stays,
// and its new private key, or nil if the key stays. A certificate signed by
// a replaced CA gets a new key when its key is inline (inlineKey), as the
// table's leaves do; a key kept in a file of the user's cannot be replaced,
// so it is re-signed for the same key.
func (m Manager) replacement(c *x509.Certificate, inlineKey bool, old, updated map[string]*KeyPair, leaves, cas []Spec, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	for _, s := range leaves {
		if c.Equal(old[s.Name].Cert) {
			kp := updated[s.Name]
			if publicKeysEqual(kp.Key.Public(), old[s.Name].Key.Public()) {
				return kp.Cert, nil, nil
			}
			return kp.Cert, kp.Key, nil
		}
	}
	for _, s := range cas {
		if c.CheckSignatureFrom(old[s.Name].Cert) != nil {
			continue
		}
		if !inlineKey {
			nc, err := Resign(c, updated[s.Name], c.PublicKey, now)
			return nc, nil, err
		}
		key, err := NewKey()
		if err != nil {
			return nil, nil, err
		}
		nc, err := Resign(c, updated[s.Name], key.Public(), now)
		if err != nil {
			return nil, nil, err
		}
		return nc, key, nil
	}
	return nil, nil, nil
}
