// Package credentials writes and reads what clients authenticate with:
// kubeconfigs, the static token file and the legacy password file.
package credentials

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// ClusterName names the cluster, user and context in our kubeconfigs.
const ClusterName = "kubeseed"

// Kubeconfig is what a client needs to reach the apiserver as one identity:
// either inline PEM data, or paths to files (relative paths are relative to
// the kubeconfig's directory). client-go re-reads referenced client
// certificates, so renewing those files needs no restart.
type Kubeconfig struct {
	Server   string // https://host:port
	CAPEM    []byte
	CertPEM  []byte
	KeyPEM   []byte
	CAFile   string
	CertFile string
	KeyFile  string
	User     string
}

// Bytes renders the kubeconfig with clientcmd.
func (k Kubeconfig) Bytes() ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ClusterName] = &clientcmdapi.Cluster{Server: k.Server, CertificateAuthorityData: k.CAPEM, CertificateAuthority: k.CAFile}
	cfg.AuthInfos[k.User] = &clientcmdapi.AuthInfo{ClientCertificateData: k.CertPEM, ClientKeyData: k.KeyPEM,
		ClientCertificate: k.CertFile, ClientKey: k.KeyFile}
	cfg.Contexts[ClusterName] = &clientcmdapi.Context{Cluster: ClusterName, AuthInfo: k.User}
	cfg.CurrentContext = ClusterName
	return clientcmd.Write(*cfg)
}

// Write stores the kubeconfig atomically with mode 0600.
func (k Kubeconfig) Write(path string) error {
	data, err := k.Bytes()
	if err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	return fsutil.WriteFileAtomic(path, data, 0o600)
}

// WriteKubeconfigTo writes kubeconfig data to a path the user chose (as
// ~/.kube/config): mode 0600 and atomic, as every credential kubeseed
// writes, with a missing parent directory created 0700. A symlink is
// followed, so a linked file is updated rather than replaced by a file.
func WriteKubeconfigTo(path string, data []byte) error {
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return fmt.Errorf("%s is a directory; give the kubeconfig's file name, e.g. %s", path, filepath.Join(path, "config"))
		}
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		path = target
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := fsutil.MakeDir(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, data, 0o600)
}

// WithServer returns the kubeconfig at path with every cluster's server
// replaced, for printing (kubeseed config) rather than writing.
func WithServer(path, server string) ([]byte, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	for _, c := range cfg.Clusters {
		c.Server = server
	}
	return clientcmd.Write(*cfg)
}

// NewToken is a 256-bit secret from crypto/rand, URL-safe so it never needs
// quoting in CSV.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// EnsureTokenFile creates path with one admin token if it does not exist,
// and otherwise validates it.
func EnsureTokenFile(path string) ([]Token, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return ParseTokens(path, data)
	}
	if !os.IsNotExist(err) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	tok, err := NewToken()
	if err != nil {
		return nil, err
	}
	tokens := []Token{{Token: tok, User: "admin", UID: "admin", Groups: []string{"system:masters"}}}
	if err := fsutil.WriteFileAtomic(path, FormatTokens(tokens), 0o600); err != nil {
		return nil, err
	}
	return tokens, nil
}
