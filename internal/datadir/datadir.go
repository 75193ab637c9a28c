// Package datadir names every path inside a kubeseed data directory, so no
// other package builds paths by hand.
package datadir

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// Default is the data directory used when neither --data-dir nor
// KUBESEED_DATA_DIR is given.
const Default = "/var/lib/kubeseed"

// Layout is a data directory.
type Layout struct {
	Root string
}

// New returns the layout rooted at dir (made absolute).
func New(dir string) (Layout, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Layout{}, fmt.Errorf("data dir %q: %w", dir, err)
	}
	return Layout{Root: abs}, nil
}

func (l Layout) CertsDir() string       { return filepath.Join(l.Root, "certs") }
func (l Layout) CredentialsDir() string { return filepath.Join(l.Root, "credentials") }
func (l Layout) ArgsDir() string        { return filepath.Join(l.Root, "args") }
func (l Layout) ConfigDir() string      { return filepath.Join(l.Root, "config") }
func (l Layout) RunDir() string         { return filepath.Join(l.Root, "run") }
func (l Layout) VarDir() string         { return filepath.Join(l.Root, "var") }

func (l Layout) Cert(name string) string       { return filepath.Join(l.CertsDir(), name+".crt") }
func (l Layout) Key(name string) string        { return filepath.Join(l.CertsDir(), name+".key") }
func (l Layout) CSRTemplate() string           { return filepath.Join(l.CertsDir(), "csr.conf.template") }
func (l Layout) Credential(file string) string { return filepath.Join(l.CredentialsDir(), file) }
func (l Layout) TokenFile() string             { return l.Credential("known_tokens.csv") }
func (l Layout) AdminKubeconfig() string       { return l.Credential("client.config") }
func (l Layout) Args(component string) string  { return filepath.Join(l.ArgsDir(), component) }
func (l Layout) Config(file string) string     { return filepath.Join(l.ConfigDir(), file) }
func (l Layout) EtcdDataDir() string           { return filepath.Join(l.VarDir(), "etcd") }
func (l Layout) Run(file string) string        { return filepath.Join(l.RunDir(), file) }
func (l Layout) PIDFile() string               { return filepath.Join(l.RunDir(), "kubeseed.pid") }
func (l Layout) KubectlCacheDir() string       { return filepath.Join(l.RunDir(), "kubectl-cache") }

// UsersDir holds the kubeconfigs of `kubeseed add-user`.
func (l Layout) UsersDir() string { return l.Credential("users") }

func (l Layout) UserKubeconfig(name string) string {
	return filepath.Join(l.UsersDir(), name+".config")
}

// CertsBackupDir holds one directory per certificate refresh, with the
// files it replaced.
func (l Layout) CertsBackupDir() string { return filepath.Join(l.Root, "certs-backup") }

// CertsLock serialises certificate refreshes (CLI and running node).
func (l Layout) CertsLock() string { return filepath.Join(l.RunDir(), "certs.lock") }

// CertRenewalState is where a running node records its renewal schedule.
func (l Layout) CertRenewalState() string { return filepath.Join(l.RunDir(), "cert-renewal.json") }

// ServiceRangeRecord holds the service range the node was first started
// with, which cannot change later (see package netconf).
func (l Layout) ServiceRangeRecord() string { return filepath.Join(l.VarDir(), "service-cidr") }

func (l Layout) FlexVolumeDir() string {
	return filepath.Join(l.VarDir(), "kubelet-plugins", "volume", "exec")
}

// Vars are the ${NAME} references args files may use.
func (l Layout) Vars() map[string]string {
	return map[string]string{"DATA_DIR": l.Root}
}

// Ensure creates the directories, with the secret ones at 0700.
func (l Layout) Ensure() error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{l.Root, 0o755},
		{l.CertsDir(), 0o700},
		{l.CredentialsDir(), 0o700},
		{l.ArgsDir(), 0o755},
		{l.ConfigDir(), 0o755},
		{l.RunDir(), 0o755},
		{l.VarDir(), 0o700},
	} {
		if err := fsutil.EnsureDir(d.path, d.mode); err != nil {
			return err
		}
	}
	return nil
}
