package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/util/cert"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// DefaultKeepBackups is how many certs-backup/ entries are kept.
const DefaultKeepBackups = 10

// Manager changes the certificates of a started data dir: refresh, CA
// install, undo, renewal and SAN updates. Each change is one fsutil.Txn
// (all files or none, with a backup under certs-backup/), taken under the
// data dir's certificate lock after recovering an interrupted one.
//
// A leaf refresh or renewal keeps the leaf's key, so a reader that loads a
// certificate and its key separately never sees a mismatched pair. A CA
// change (refused while the node runs) gives the leaves new keys.
type Manager struct {
	Layout  datadir.Layout
	Vars    map[string]string // csr.conf.template's ${NAME}s
	Now     func() time.Time
	HostIPs func() ([]net.IP, error)
	// Running reports the PID of a node running on Layout (0: none). A CA
	// change is refused while one runs. nil means never running.
	Running func() (int, error)
	// AfterOp is the fault-injection hook of fsutil.Txn.
	AfterOp     func() error
	KeepBackups int // 0 means DefaultKeepBackups
}

// Result says what a change did.
type Result struct {
	Issued    []string // spec names whose certificate changed, table order
	Files     []string // paths written or removed
	Backup    string   // the backup made ("" for an undo)
	Old, New  map[string]*x509.Certificate
	Recovered string // what recovering an interrupted change did, if anything
	Warnings  []string
}

// ErrNodeRunning refuses a CA change on a running node.
var ErrNodeRunning = errors.New("the node is running")

func (m Manager) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

func (m Manager) txn() fsutil.Txn {
	return fsutil.Txn{Root: m.Layout.Root, AfterOp: m.AfterOp}
}

func (m Manager) store() Store { return Store{Dir: m.Layout.CertsDir()} }

// locked runs f under the certificate lock, after finishing or discarding
// a change a crash interrupted.
func (m Manager) locked(ctx context.Context, f func(recovered string) error) error {
	if ok, err := fsutil.Exists(m.Layout.CertsDir()); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("no certificates in %s: start the node once with `kubeseed start` to create them", m.Layout.CertsDir())
	}
	if err := fsutil.EnsureDir(m.Layout.RunDir(), 0o755); err != nil {
		return err
	}
	unlock, err := fsutil.Lock(ctx, m.Layout.CertsLock())
	if err != nil {
		return err
	}
	defer unlock()
	what, err := m.txn().Recover()
	if err != nil {
		return err
	}
	return f(what)
}

// Recover finishes or discards a change a crash interrupted; see fsutil.Txn.
func (m Manager) Recover(ctx context.Context) (string, error) {
	var what string
	err := m.locked(ctx, func(r string) error { what = r; return nil })
	return what, err
}

func (m Manager) refuseIfRunning(what string) error {
	if m.Running == nil {
		return nil
	}
	pid, err := m.Running()
	if err != nil {
		return err
	}
	if pid != 0 {
		return fmt.Errorf("%w (pid %d): %s replaces a CA, which the running components read only at start "+
			"(kube-controller-manager's --root-ca-file, etcd's --trusted-ca-file, the CA inside every kubeconfig); "+
			"run `kubeseed stop`, then this command again, then `kubeseed start`", ErrNodeRunning, pid, what)
	}
	return nil
}

// LookupCert finds a certificate spec by file name ("server.crt") or name.
func LookupCert(name string) (Spec, error) {
	s, ok := Lookup(strings.TrimSuffix(name, ".crt"))
	if !ok || s.KeyOnly {
		var names []string
		for _, s := range Table {
			if !s.KeyOnly {
				names = append(names, s.Name+".crt")
			}
		}
		return Spec{}, fmt.Errorf("--cert %q: no such certificate; one of: %s", name, strings.Join(names, ", "))
	}
	return s, nil
}

// loadAll loads every spec's files and checks each chain.
func (m Manager) loadAll() (map[string]*KeyPair, error) {
	st := m.store()
	pairs := map[string]*KeyPair{}
	for _, spec := range Table {
		kp, err := st.Load(spec)
		if err != nil {
			return nil, fmt.Errorf("%w; restore the file (`kubeseed refresh-certs --undo` restores the last backup) or start the node to issue missing ones", err)
		}
		if err := Verify(spec, kp, pairs[spec.CA]); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Layout.CertsDir(), err)
		}
		pairs[spec.Name] = kp
	}
	return pairs, nil
}

// inputs gathers the node's facts. A template that does not parse is
// returned as templateErr with Template nil; callers that re-render
// TemplateSANs must stop on it, renewal falls back to the current SANs.
func (m Manager) inputs(pairs map[string]*KeyPair) (in Inputs, templateErr error, err error) {
	in.NodeName = recordedNodeName(pairs)
	if m.HostIPs != nil {
		if in.HostIPs, err = m.HostIPs(); err != nil {
			return in, nil, err
		}
	}
	data, err := os.ReadFile(m.Layout.CSRTemplate())
	if err != nil {
		return in, fmt.Errorf("read %s: %w", m.Layout.CSRTemplate(), err), nil
	}
	in.Template, templateErr = ParseTemplate(m.Layout.CSRTemplate(), data, m.Vars)
	return in, templateErr, nil
}

// recordedNodeName reads the node name back from a certificate whose CN
// carries it (the first start chose it).
func recordedNodeName(pairs map[string]*KeyPair) string {
	for _, s := range Table {
		before, after, ok := strings.Cut(s.CommonName, NodeNameToken)
		kp := pairs[s.Name]
		if !ok || kp == nil || kp.Cert == nil {
			continue
		}
		cn := kp.Cert.Subject.CommonName
		if strings.HasPrefix(cn, before) && strings.HasSuffix(cn, after) && len(cn) > len(before)+len(after) {
			return cn[len(before) : len(cn)-len(after)]
		}
	}
	return ""
}

// keepingSANs makes Inputs that render kp's current SANs for a
// TemplateSANs spec, for renewing despite a broken template.
func keepingSANs(in Inputs, kp *KeyPair) Inputs {
	in.Template = &Template{AltNames: AltNames{DNS: kp.Cert.DNSNames, IPs: kp.Cert.IPAddresses}}
	return in
}

// RefreshCert issues a new certificate for the named spec. A leaf keeps its
// key and takes its SANs from the template and the host's current IPs. A
// CA gets a new key, and every leaf it signs is issued again with a new
// key; refused while the node runs.
func (m Manager) RefreshCert(ctx context.Context, name string) (*Result, error) {
	spec, err := LookupCert(name)
	if err != nil {
		return nil, err
	}
	var res *Result
	err = m.locked(ctx, func(recovered string) error {
		if spec.IsCA() {
			if err := m.refuseIfRunning("--cert " + spec.Name + ".crt"); err != nil {
				return err
			}
		}
		pairs, err := m.loadAll()
		if err != nil {
			return err
		}
		now := m.now()
		var updated map[string]*KeyPair
		if spec.IsCA() {
			key, err := NewKey()
			if err != nil {
				return err
			}
			ca, err := IssueWithKey(spec, Inputs{}, nil, key, now)
			if err != nil {
				return err
			}
			updated, err = m.resignUnder(spec, ca, pairs, now)
			if err != nil {
				return err
			}
		} else {
			in, tmplErr, err := m.inputs(pairs)
			if err != nil {
				return err
			}
			if spec.SANs == TemplateSANs && tmplErr != nil {
				return fmt.Errorf("%w; nothing was changed, %s.crt stays in place", tmplErr, spec.Name)
			}
			kp, err := IssueWithKey(spec, in, pairs[spec.CA], pairs[spec.Name].Key, now)
			if err != nil {
				return err
			}
			updated = map[string]*KeyPair{spec.Name: kp}
		}
		res, err = m.commit(pairs, updated, nil, "refresh-certs --cert "+spec.Name+".crt", now)
		if res != nil {
			res.Recovered = recovered
		}
		return err
	})
	return res, err
}

// resignUnder installs ca as the CA spec and issues every leaf it signs
// again under it, each with a new key: a CA is replaced when it may be
// compromised, and so may the keys next to it. The node is stopped, so no
// reader can see a certificate and key that do not match.
func (m Manager) resignUnder(spec Spec, ca *KeyPair, pairs map[string]*KeyPair, now time.Time) (map[string]*KeyPair, error) {
	updated := map[string]*KeyPair{spec.Name: ca}
	leaves := Signed(spec.Name)
	in, tmplErr, err := m.inputs(pairs)
	if err != nil {
		return nil, err
	}
	for _, leaf := range leaves {
		if leaf.SANs == TemplateSANs && tmplErr != nil {
			return nil, fmt.Errorf("%w; nothing was changed (%s.crt is re-signed from it)", tmplErr, leaf.Name)
		}
		key, err := NewKey()
		if err != nil {
			return nil, err
		}
		kp, err := IssueWithKey(leaf, in, ca, key, now)
		if err != nil {
			return nil, err
		}
		updated[leaf.Name] = kp
	}
	return updated, nil
}

// LoadCADir reads and checks a user-supplied CA: dir/ca.crt and dir/ca.key
// must be a matching pair, a CA allowed to sign, valid at now, with an RSA
// or ECDSA key (what kube-controller-manager can sign with).
func LoadCADir(dir string, now time.Time) (*KeyPair, error) {
	crtPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	certs, err := cert.CertsFromFile(crtPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", crtPath, err)
	}
	c := certs[0]
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	switch key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey:
	default:
		return nil, fmt.Errorf("%s: a %T key; kubeseed signs with RSA or ECDSA CA keys only", keyPath, key)
	}
	if !publicKeysEqual(c.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%s does not match %s: the key is not the certificate's private key", keyPath, crtPath)
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		return nil, fmt.Errorf("%s (subject %q) is not a CA certificate: it lacks basicConstraints CA:TRUE", crtPath, c.Subject.String())
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%s may not sign certificates: its keyUsage lacks keyCertSign", crtPath)
	}
	if now.After(c.NotAfter) {
		return nil, fmt.Errorf("%s expired on %s", crtPath, c.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(c.NotBefore) {
		return nil, fmt.Errorf("%s is not valid before %s (check this host's clock)", crtPath, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return &KeyPair{Cert: c, Key: key}, nil
}

// InstallCA makes dir's ca.crt and ca.key the cluster CA and re-signs
// everything it signs. Refused while the node runs.
func (m Manager) InstallCA(ctx context.Context, dir string) (*Result, error) {
	ca, err := LoadCADir(dir, m.now())
	if err != nil {
		return nil, fmt.Errorf("%w; nothing was changed", err)
	}
	spec, _ := Lookup("ca")
	var res *Result
	err = m.locked(ctx, func(recovered string) error {
		if err := m.refuseIfRunning("installing " + dir); err != nil {
			return err
		}
		pairs, err := m.loadAll()
		if err != nil {
			return err
		}
		now := m.now()
		updated, err := m.resignUnder(spec, ca, pairs, now)
		if err != nil {
			return err
		}
		res, err = m.commit(pairs, updated, nil, "refresh-certs "+dir, now)
		if res != nil {
			res.Recovered = recovered
			if left := ca.Cert.NotAfter.Sub(now); left < 30*24*time.Hour {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s expires in %d days; leaf certificates cannot outlive it",
					filepath.Join(dir, "ca.crt"), int(left.Hours()/24)))
			}
		}
		return err
	})
	return res, err
}

// commit writes updated pairs (and every kubeconfig they affect) plus extra
// changes as one transaction, with a backup.
func (m Manager) commit(pairs, updated map[string]*KeyPair, extra []fsutil.Change, note string, now time.Time) (*Result, error) {
	st := m.store()
	res := &Result{Old: map[string]*x509.Certificate{}, New: map[string]*x509.Certificate{}}
	var changes []fsutil.Change
	for _, spec := range Table {
		kp, ok := updated[spec.Name]
		if !ok {
			continue
		}
		res.Issued = append(res.Issued, spec.Name)
		res.Old[spec.Name], res.New[spec.Name] = pairs[spec.Name].Cert, kp.Cert
		if !publicKeysEqual(kp.Key.Public(), pairs[spec.Name].Key.Public()) {
			keyPEM, err := EncodeKey(kp.Key)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", spec.Name, err)
			}
			changes = append(changes, fsutil.Change{Path: st.KeyPath(spec.Name), Data: keyPEM, Mode: 0o600})
		}
		changes = append(changes, fsutil.Change{Path: st.CertPath(spec.Name), Data: EncodeCert(kp.Cert), Mode: 0o600})
	}
	kc, err := m.kubeconfigChanges(pairs, updated, now)
	if err != nil {
		return nil, err
	}
	changes = append(append(changes, kc...), extra...)
	backup, err := m.nextBackupDir(now)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		res.Files = append(res.Files, c.Path)
	}
	if err := m.txn().Commit(fsutil.Plan{Changes: changes, BackupDir: backup, Note: note}, now); err != nil {
		return nil, err
	}
	res.Backup = backup
	if err := m.pruneBackups(); err != nil {
		res.Warnings = append(res.Warnings, err.Error())
	}
	return res, nil
}

// Undo restores the latest backup byte for byte and consumes it, so a
// second undo restores the one before. It refuses if the restored files
// would not form a valid set, and, when they include a CA, while the node
// runs.
func (m Manager) Undo(ctx context.Context) (*Result, error) {
	var res *Result
	err := m.locked(ctx, func(recovered string) error {
		dir, err := m.latestBackup()
		if err != nil {
			return err
		}
		info, changes, err := m.txn().ReadBackup(dir)
		if err != nil {
			return err
		}
		res = &Result{Recovered: recovered, Old: map[string]*x509.Certificate{}, New: map[string]*x509.Certificate{}}
		overlay := map[string][]byte{}
		for _, c := range changes {
			res.Files = append(res.Files, c.Path)
			if !c.Remove {
				overlay[c.Path] = c.Data
			}
		}
		st := m.store()
		touchesCA := false
		for _, spec := range Table {
			if _, ok := overlay[st.CertPath(spec.Name)]; ok {
				res.Issued = append(res.Issued, spec.Name)
				touchesCA = touchesCA || spec.IsCA()
			}
			if _, ok := overlay[st.KeyPath(spec.Name)]; ok && spec.IsCA() {
				touchesCA = true
			}
		}
		if touchesCA {
			if err := m.refuseIfRunning("undoing " + filepath.Base(dir) + " (" + info.Note + ")"); err != nil {
				return err
			}
		}
		// The restored set must be whole: every key matches and every
		// chain holds, or nothing is written.
		pairs := map[string]*KeyPair{}
		for _, spec := range Table {
			kp, err := st.loadWith(spec, overlay)
			if err == nil {
				err = Verify(spec, kp, pairs[spec.CA])
			}
			if err != nil {
				return fmt.Errorf("restoring %s would leave a broken set (%w); nothing was changed", dir, err)
			}
			pairs[spec.Name] = kp
			if slices.Contains(res.Issued, spec.Name) {
				res.New[spec.Name] = kp.Cert
				if cur, err := LoadCert(st.CertPath(spec.Name)); err == nil {
					res.Old[spec.Name] = cur
				}
			}
		}
		if err := m.txn().Commit(fsutil.Plan{Changes: changes, Consume: dir}, m.now()); err != nil {
			return err
		}
		res.Backup = ""
		res.Warnings = append(res.Warnings, "restored "+dir+" ("+info.Note+", "+info.Created.Format(time.RFC3339)+")")
		return nil
	})
	return res, err
}

// loadWith is Load with file contents taken from overlay where present.
func (s Store) loadWith(spec Spec, overlay map[string][]byte) (*KeyPair, error) {
	read := func(p string) ([]byte, error) {
		if d, ok := overlay[p]; ok {
			return d, nil
		}
		return os.ReadFile(p)
	}
	keyPEM, err := read(s.KeyPath(spec.Name))
	if err != nil {
		return nil, err
	}
	var crtPEM []byte
	if !spec.KeyOnly {
		if crtPEM, err = read(s.CertPath(spec.Name)); err != nil {
			return nil, err
		}
	}
	kp, err := ParseKeyPair(spec, crtPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Dir, err)
	}
	return kp, nil
}

// ParseKeyPair parses a spec's PEM key and, unless it is a bare key, its
// certificate; errors name the file.
func ParseKeyPair(spec Spec, crtPEM, keyPEM []byte) (*KeyPair, error) {
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s.key: %w", spec.Name, err)
	}
	kp := &KeyPair{Key: key}
	if spec.KeyOnly {
		return kp, nil
	}
	certs, err := cert.ParseCertsPEM(crtPEM)
	if err != nil {
		return nil, fmt.Errorf("%s.crt: %w", spec.Name, err)
	}
	kp.Cert = certs[0]
	return kp, nil
}

// KeyMatches says whether the certificate, if any, is for the key.
func (kp *KeyPair) KeyMatches() bool {
	return kp.Cert == nil || publicKeysEqual(kp.Cert.PublicKey, kp.Key.Public())
}

// Expiry is one certificate's validity.
type Expiry struct {
	Name     string // file name, e.g. "server.crt"
	CA       string // signer's file name; "" for a CA
	NotAfter time.Time
	Err      error
}

// DaysLeft rounds down.
func (e Expiry) DaysLeft(now time.Time) int {
	return int(e.NotAfter.Sub(now).Hours() / 24)
}

// Expiries lists every certificate of the table with its expiry.
func (m Manager) Expiries() []Expiry {
	var out []Expiry
	for _, spec := range Table {
		if spec.KeyOnly {
			continue
		}
		e := Expiry{Name: spec.Name + ".crt"}
		if spec.CA != "" {
			e.CA = spec.CA + ".crt"
		}
		c, err := LoadCert(m.store().CertPath(spec.Name))
		if err != nil {
			e.Err = err
		} else {
			e.NotAfter = c.NotAfter
		}
		out = append(out, e)
	}
	return out
}
