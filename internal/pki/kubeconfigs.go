package pki

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/cert"

	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// kubeconfigChanges rewrites the kubeconfigs under credentials/ whose
// inline data holds a certificate that changes: a replaced CA, a re-issued
// table certificate, or a client certificate a replaced CA signed (a
// user's, re-signed with its key kept). Kubeconfigs that reference files
// under certs/ need no change.
func (m Manager) kubeconfigChanges(old, updated map[string]*KeyPair, now time.Time) ([]fsutil.Change, error) {
	dir := m.Layout.CredentialsDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
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
	var out []fsutil.Change
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !(ours[name] || strings.HasSuffix(name, ".config") || strings.HasSuffix(name, ".kubeconfig")) {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		cfg, err := clientcmd.Load(data)
		if err != nil {
			if ours[name] {
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
				if ours[name] {
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
				if ours[name] {
					return nil, fmt.Errorf("%s: client-certificate-data: %w", path, err)
				}
				continue
			}
			c, err := m.replacement(certs[0], old, updated, leaves, cas, now)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if c != nil {
				ai.ClientCertificateData, changed = EncodeCert(c), true
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

// replacement is the certificate that takes c's place, or nil if c stays.
func (m Manager) replacement(c *x509.Certificate, old, updated map[string]*KeyPair, leaves, cas []Spec, now time.Time) (*x509.Certificate, error) {
	for _, s := range leaves {
		if c.Equal(old[s.Name].Cert) {
			return updated[s.Name].Cert, nil
		}
	}
	for _, s := range cas {
		if c.CheckSignatureFrom(old[s.Name].Cert) == nil {
			return Resign(c, updated[s.Name], now)
		}
	}
	return nil, nil
}
