package bootstrap

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/credentials"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/services"
)

// oldTokenAuthFile is the --token-auth-file value of data dirs made before
// the token webhook.
const oldTokenAuthFile = "${DATA_DIR}/credentials/known_tokens.csv"

// argsMigration moves an older args/kube-apiserver to the flags this
// version relies on. It is planned (parsed, checked) before anything is
// written and applied after.
type argsMigration struct {
	file    *args.File
	config  []byte // config/authorization.yaml to create, or nil
	changes []string
}

// planArgsMigration looks at an existing args/kube-apiserver:
//   - --token-auth-file with the old default becomes the token webhook
//     (kube-apiserver reads that file once, so token edits would need a
//     restart, and a removed token would keep working);
//   - --authorization-mode AlwaysAllow or Node,RBAC becomes
//     --authorization-config, which kube-apiserver reloads;
//   - without --enable-admission-plugins, NodeRestriction is enabled.
//
// Anything else is the user's choice and is left alone, with a warning
// when a kubeseed command depends on it.
func planArgsMigration(ctx context.Context, l datadir.Layout) (*argsMigration, error) {
	log := klog.FromContext(ctx)
	f, err := loadIfExists(l.Args(defaults.APIServerComponent))
	if f == nil || err != nil {
		return nil, err
	}
	m := &argsMigration{file: f}
	_, hasWebhook := f.Get("authentication-token-webhook-config-file")
	if v, ok := f.Get("token-auth-file"); ok {
		if v == oldTokenAuthFile && !hasWebhook {
			f.Remove("token-auth-file")
			f.Set("authentication-token-webhook-config-file", "${DATA_DIR}/config/"+defaults.TokenWebhookKubeconfig)
			f.Set("authentication-token-webhook-version", "v1")
			f.Set("authentication-token-webhook-cache-ttl", defaults.TokenWebhookCacheTTL)
			m.changes = append(m.changes, "--token-auth-file replaced by the token webhook, which reloads known_tokens.csv")
		} else {
			log.Info("WARNING: --token-auth-file is read once, at start: tokens in that file are not changed by `kubeseed token`, and removing one needs a restart", "file", f.Path, "token-auth-file", v)
		}
	}
	if v, ok := f.Get("authorization-mode"); ok {
		if _, hasConfig := f.Get("authorization-config"); !hasConfig {
			mode, known := legacyMode(v)
			if !known {
				log.Info("WARNING: `kubeseed enable/disable rbac` switch authorization through --authorization-config; this --authorization-mode is left as it is", "file", f.Path, "authorization-mode", v)
			} else {
				exists, err := fsutil.Exists(l.Config(authz.ConfigFile))
				if err != nil {
					return nil, err
				}
				if exists {
					return nil, fmt.Errorf("%s: --authorization-mode=%s is set and %s exists too; remove one of them", f.Path, v, l.Config(authz.ConfigFile))
				}
				f.Remove("authorization-mode")
				f.Set("authorization-config", "${DATA_DIR}/config/"+authz.ConfigFile)
				m.config = authz.Render(mode, false, defaults.Webhooks(l))
				m.changes = append(m.changes, fmt.Sprintf("--authorization-mode=%s replaced by --authorization-config (%s), which kube-apiserver reloads", v, mode))
			}
		}
	}
	if _, ok := f.Get("enable-admission-plugins"); !ok {
		f.Set("enable-admission-plugins", "NodeRestriction")
		m.changes = append(m.changes, "NodeRestriction admission enabled")
	}
	m.changes = append(m.changes, addMissing(f, defaults.TLSFlags(defaults.APIServerComponent))...)
	if len(m.changes) == 0 {
		return nil, nil
	}
	return m, nil
}

// addMissing sets each flag f lacks, and says so; flags the user set are
// the user's choice.
func addMissing(f *args.File, flags [][2]string) []string {
	var added []string
	for _, kv := range flags {
		if _, ok := f.Get(kv[0]); !ok {
			f.Set(kv[0], kv[1])
			added = append(added, "--"+kv[0]+" added")
		}
	}
	return added
}

// planFlagMigrations gives older args files of the controller-manager,
// the scheduler and etcd the TLS and cluster flags they lack (the
// apiserver's are in planArgsMigration, which owns that file). An older
// kubeseed wrote --leader-elect=false for a single node; clustering needs
// it on.
func planFlagMigrations(l datadir.Layout) ([]*argsMigration, error) {
	var out []*argsMigration
	for _, c := range []string{defaults.ControllerManagerComponent, defaults.SchedulerComponent, defaults.EtcdComponent} {
		f, err := loadIfExists(l.Args(c))
		if err != nil {
			return nil, err
		}
		if f == nil {
			continue
		}
		var changes []string
		if v, ok := f.Get("leader-elect"); ok && v == "false" && len(defaults.ClusterFlags(c)) > 0 {
			f.Set("leader-elect", "true")
			changes = append(changes, "--leader-elect=false (an older kubeseed's single-node default) is now true, as clustering needs")
		}
		changes = append(changes, addMissing(f, append(defaults.ClusterFlags(c), defaults.TLSFlags(c)...))...)
		if c == defaults.EtcdComponent {
			if change, err := addHAPeerListener(f); err != nil {
				return nil, err
			} else if change != "" {
				changes = append(changes, change)
			}
		}
		if len(changes) > 0 {
			out = append(out, &argsMigration{file: f, changes: changes})
		}
	}
	m, err := planJoinedNodeIP(l)
	if err != nil || m == nil {
		return out, err
	}
	return append(out, m), nil
}

// planJoinedNodeIP gives the kubelet of a control plane that joined before
// kubeseed set it a --node-ip: its etcd peer URL's address. Without it the
// kubelet looks the node name up in DNS at every status update, and a name
// that does not resolve costs the resolver's timeout each time.
func planJoinedNodeIP(l datadir.Layout) (*argsMigration, error) {
	etcd, err := loadIfExists(l.Args(defaults.EtcdComponent))
	if etcd == nil || err != nil {
		return nil, err
	}
	kubelet, err := loadIfExists(l.Args(defaults.KubeletComponent))
	if kubelet == nil || err != nil {
		return nil, err
	}
	state, _ := etcd.Get("initial-cluster-state")
	peerURL, ok := etcd.Get("initial-advertise-peer-urls")
	if _, set := kubelet.Get("node-ip"); set || state != "existing" || !ok {
		return nil, nil
	}
	ip, err := peerIP(peerURL)
	if err != nil {
		return nil, nil // the user's own peer URL; the kubelet finds its address itself
	}
	kubelet.Set("node-ip", ip)
	return &argsMigration{file: kubelet, changes: []string{"--node-ip=" + ip + " (this control plane's etcd peer address), so the kubelet no longer looks its node name up in DNS"}}, nil
}

// addHAPeerListener adds the host's 19001 to an older args/etcd's
// listen-peer-urls, at the offset of its loopback peer port, so a control
// plane can join without an etcd restart. A list the user changed away
// from the loopback peer URL alone is left as it is.
func addHAPeerListener(f *args.File) (string, error) {
	v, ok := f.Get("listen-peer-urls")
	if !ok {
		return "", nil
	}
	peer := services.MustLookup("etcd-peer")
	port, err := peer.PortFromFlag(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.Path, err)
	}
	if strings.Contains(v, ",") || !strings.HasPrefix(strings.TrimSpace(v), "https://127.0.0.1:") {
		return "", nil
	}
	f.Set("listen-peer-urls", defaults.EtcdPeerListenURLs(port-peer.Port))
	return "--listen-peer-urls gains the host's " + defaults.EtcdHAPeerURL("", port-peer.Port) + " for control-plane joins", nil
}

// legacyMode maps the --authorization-mode values kubeseed manages.
func legacyMode(v string) (authz.Mode, bool) {
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	switch {
	case len(parts) == 1 && parts[0] == "AlwaysAllow":
		return authz.AlwaysAllow, true
	case len(parts) == 2 && (parts[0] == "Node" && parts[1] == "RBAC" || parts[0] == "RBAC" && parts[1] == "Node"):
		return authz.RBAC, true
	}
	return "", false
}

func (m *argsMigration) apply(ctx context.Context, l datadir.Layout, res *Result) error {
	if m == nil {
		return nil
	}
	if m.config != nil {
		if err := fsutil.WriteFileAtomic(l.Config(authz.ConfigFile), m.config, 0o644); err != nil {
			return err
		}
		res.Created = append(res.Created, l.Config(authz.ConfigFile))
	}
	if err := fsutil.WriteFileAtomic(m.file.Path, m.file.Bytes(), 0o644); err != nil {
		return err
	}
	msg := fmt.Sprintf("migrated %s: %s", m.file.Path, strings.Join(m.changes, "; "))
	klog.FromContext(ctx).Info("Migrated an args file written by an older kubeseed", "file", m.file.Path, "changes", m.changes)
	res.Notices = append(res.Notices, msg)
	return nil
}

// kubeletMigration adds to an older args/kubelet.yaml what this version
// relies on: podLogsDir in the data dir, since the kubelet's garbage
// collection deletes the log directories of pods it does not know, and so
// nodes sharing /var/log/pods delete each other's logs; and the TLS and
// debug-endpoint settings of a new node.
type kubeletMigration struct {
	path   string
	data   []byte
	fields []string
}

func planKubeletMigration(l datadir.Layout) (*kubeletMigration, error) {
	path := l.Args(defaults.KubeletConfigFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc == nil {
		return nil, nil // the kubelet reports an empty file
	}
	out := append([]byte{}, data...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	m := &kubeletMigration{path: path}
	for _, add := range kubeletAdditions() {
		if _, ok := doc[add.field]; ok {
			continue
		}
		out = append(out, "# Added by kubeseed: "+add.why+"\n"+add.field+": "+add.value+"\n"...)
		m.fields = append(m.fields, add.field)
	}
	if len(m.fields) == 0 {
		return nil, nil
	}
	var check map[string]any
	if err := yaml.Unmarshal(out, &check); err != nil || len(check) != len(doc)+len(m.fields) {
		return nil, fmt.Errorf("%s: kubeseed needs %s in this file and cannot add them to its layout; add them yourself (see a new node's kubelet.yaml)", path, strings.Join(m.fields, ", "))
	}
	m.data = out
	return m, nil
}

// kubeletAdditions are the top-level kubelet.yaml fields an older file may
// lack, with the value a new node gets.
func kubeletAdditions() []struct{ field, value, why string } {
	return []struct{ field, value, why string }{
		{"podLogsDir", defaults.PodLogsDirSetting, "this node's own pod logs (other nodes' kubelets would delete them)."},
		{"tlsMinVersion", defaults.TLSMinVersion, "TLS 1.2 or later on the kubelet's port."},
		{"tlsCipherSuites", "[" + strings.Join(defaults.TLSCipherSuites, ", ") + "]", "AEAD cipher suites only."},
		{"enableProfilingHandler", "false", "no pprof of the whole process on the kubelet's port."},
		{"enableDebugFlagsHandler", "false", "no log-level endpoint of the whole process on the kubelet's port."},
	}
}

func (m *kubeletMigration) apply(ctx context.Context, res *Result) error {
	if m == nil {
		return nil
	}
	if err := fsutil.WriteFileAtomic(m.path, m.data, 0o644); err != nil {
		return err
	}
	klog.FromContext(ctx).Info("Migrated an args file written by an older kubeseed", "file", m.path, "added", m.fields)
	res.Notices = append(res.Notices, fmt.Sprintf("migrated %s: %s added", m.path, strings.Join(m.fields, ", ")))
	return nil
}

// passwordMigration moves the users of the legacy static password file
// (credentials/basic_auth.csv) to the token file: kube-apiserver removed
// password authentication in v1.19, and kubeseed never ignores the file
// silently.
type passwordMigration struct {
	path  string
	users []credentials.PasswordUser
}

// MigratedSuffix is appended to basic_auth.csv once its users are tokens.
const MigratedSuffix = ".migrated"

func planPasswordMigration(l datadir.Layout) (*passwordMigration, error) {
	path := l.Credential(credentials.BasicAuthFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	users, err := credentials.ParseBasicAuth(path, data)
	if err != nil {
		return nil, fmt.Errorf("%w (kubeseed migrates this legacy password file to tokens at start; fix or remove it)", err)
	}
	if ok, err := fsutil.Exists(path + MigratedSuffix); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("%s needs migrating to tokens, but %s%s exists from an earlier migration; move that file away and start again", path, path, MigratedSuffix)
	}
	return &passwordMigration{path: path, users: users}, nil
}

// apply gives every user a new random token with the same uid and groups,
// then renames the file. The passwords are not reused: they were often
// weak, and clients must switch from basic auth to a bearer token anyway.
func (m *passwordMigration) apply(ctx context.Context, l datadir.Layout, res *Result) error {
	if m == nil {
		return nil
	}
	var names []string
	err := credentials.TokenFile{Path: l.TokenFile()}.Update(func(tokens []credentials.Token) ([]credentials.Token, error) {
		for _, u := range m.users {
			tok, err := credentials.NewToken()
			if err != nil {
				return nil, err
			}
			tokens = append(tokens, credentials.Token{Token: tok, User: u.User, UID: u.UID, Groups: u.Groups})
			names = append(names, u.User)
		}
		return tokens, nil
	})
	if err != nil {
		return err
	}
	if err := os.Chmod(m.path, 0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", m.path, err)
	}
	if err := os.Rename(m.path, m.path+MigratedSuffix); err != nil {
		return fmt.Errorf("rename %s: %w", m.path, err)
	}
	klog.FromContext(ctx).Info("Migrated the static password file to tokens: kube-apiserver removed password authentication in v1.19. Each user has a new token in the token file; the old file was renamed",
		"file", m.path, "users", names, "tokenFile", l.TokenFile(), "renamedTo", m.path+MigratedSuffix)
	res.Notices = append(res.Notices, fmt.Sprintf(
		"migrated %d user(s) (%s) from %s to new tokens in %s (kube-apiserver removed password authentication in v1.19); the old file is now %s%s: delete it once clients use their tokens",
		len(names), strings.Join(names, ", "), m.path, l.TokenFile(), m.path, MigratedSuffix))
	return nil
}

// legacyContainerdCNILine is the CNI line of an older containerd template,
// which pointed containerd at a static config for the whole cluster range.
const legacyContainerdCNILine = `conf_dir = "${DATA_DIR}/args/` + defaults.LegacyCNIConfDir + `"`

// legacyCNIFile is the static config an older kubeseed wrote.
const legacyCNIFile = "10-kubeseed.conflist"

// legacyCNIConfig is that config as an older kubeseed wrote it.
func legacyCNIConfig(l datadir.Layout) []byte {
	names := defaults.HostNamesFor(l)
	return []byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "%s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "%s",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "%s",
        "ranges": [[{"subnet": "%s"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
`, names.Network, names.Bridge, filepath.Join(l.VarDir(), "cni", "networks"), defaults.ClusterCIDR))
}

// cniMigration moves an older data dir from one static CNI config over the
// whole cluster range to a template over the node's own range, which
// nodes of a cluster need. An edited static config is the user's: it is
// kept, and so is the containerd template that points at it.
type cniMigration struct {
	containerd []byte // the containerd template to write, or nil
	legacyDir  string // removed once the template is in place
	static     bool   // the user's static config stays; no template is made
	warning    string
}

func planCNIMigration(l datadir.Layout) (*cniMigration, error) {
	if ok, err := fsutil.Exists(l.Args(defaults.CNITemplateFile)); err != nil || ok {
		return nil, err
	}
	ctrPath := l.Args(defaults.ContainerdConfigTemplate)
	ctr, err := os.ReadFile(ctrPath)
	if os.IsNotExist(err) {
		return nil, nil // a new node
	}
	if err != nil {
		return nil, err
	}
	legacyDir := l.Args(defaults.LegacyCNIConfDir)
	conf, err := os.ReadFile(filepath.Join(legacyDir, legacyCNIFile))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	keep := func(why string) *cniMigration {
		return &cniMigration{static: true, warning: fmt.Sprintf("WARNING: %s, so this node keeps a static pod network over the whole cluster range; a cluster needs each node's own range: see %s in a new data dir (README, Pod network)", why, defaults.CNITemplateFile)}
	}
	switch {
	case bytes.Count(ctr, []byte(legacyContainerdCNILine)) != 1:
		return keep(fmt.Sprintf("%s does not have the CNI line an older kubeseed wrote (%s)", ctrPath, legacyContainerdCNILine)), nil
	case conf == nil:
		return keep(fmt.Sprintf("%s has no %s", legacyDir, legacyCNIFile)), nil
	case !bytes.Equal(conf, legacyCNIConfig(l)):
		return keep(fmt.Sprintf("%s was edited", filepath.Join(legacyDir, legacyCNIFile))), nil
	}
	newLine := `conf_dir = "${DATA_DIR}/run/` + defaults.CNIConfDir + `"` + "\n      " +
		`conf_template = "${DATA_DIR}/args/` + defaults.CNITemplateFile + `"`
	return &cniMigration{containerd: bytes.Replace(ctr, []byte(legacyContainerdCNILine), []byte(newLine), 1), legacyDir: legacyDir}, nil
}

// apply runs after the template has been created.
func (m *cniMigration) apply(ctx context.Context, l datadir.Layout, res *Result) error {
	if m == nil {
		return nil
	}
	if m.static {
		klog.FromContext(ctx).Info(m.warning)
		res.Notices = append(res.Notices, m.warning)
		return nil
	}
	path := l.Args(defaults.ContainerdConfigTemplate)
	if err := fsutil.WriteFileAtomic(path, m.containerd, 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(m.legacyDir); err != nil {
		return fmt.Errorf("remove the old CNI config: %w", err)
	}
	msg := fmt.Sprintf("migrated the pod network to this node's own range: %s replaces %s, and %s renders it", l.Args(defaults.CNITemplateFile), m.legacyDir, path)
	klog.FromContext(ctx).Info("Migrated the pod network of an older kubeseed", "template", l.Args(defaults.CNITemplateFile), "removed", m.legacyDir, "containerdTemplate", path)
	res.Notices = append(res.Notices, msg)
	return nil
}

// previousCNITemplate is the template kubeseed wrote before the overlay:
// the bridge masqueraded everything off the node's range, at the default
// MTU.
func previousCNITemplate(l datadir.Layout) []byte {
	names := defaults.HostNamesFor(l)
	return []byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "%s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "%s",
      "isGateway": true,
      "forceAddress": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "%s",
        "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
`, names.Network, names.Bridge, filepath.Join(l.VarDir(), "cni", "networks")))
}

// cniTemplateMigration rewrites the pre-overlay CNI template: with the
// bridge's masquerade, pods on other nodes would see this node's address
// instead of the pod's. An edited template is the user's; a masquerading
// one is kept with a warning.
type cniTemplateMigration struct {
	path    string
	data    []byte // nil: keep the file
	warning string
}

// planCNITemplateMigration plans it; ip is the node's address (nil: the
// default route's), whose interface sets the pod MTU.
func planCNITemplateMigration(ctx context.Context, l datadir.Layout, ip net.IP) (*cniTemplateMigration, error) {
	path := l.Args(defaults.CNITemplateFile)
	cur, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if bytes.Equal(cur, previousCNITemplate(l)) {
		return &cniTemplateMigration{path: path, data: defaults.CNITemplate(l, podMTU(ctx, ip))}, nil
	}
	if bytes.Contains(cur, []byte(`"ipMasq": true`)) {
		return &cniTemplateMigration{path: path, warning: fmt.Sprintf(
			`WARNING: %s has "ipMasq": true, so pods on other nodes see this node's address instead of the pod's; the overlay masquerades traffic that leaves the cluster: set "ipMasq": false and an "mtu" 50 below the host's (VXLAN), then restart`, path)}, nil
	}
	return nil, nil
}

func (m *cniTemplateMigration) apply(ctx context.Context, res *Result) error {
	switch {
	case m == nil:
		return nil
	case m.data == nil:
		klog.FromContext(ctx).Info(m.warning)
		res.Notices = append(res.Notices, m.warning)
		return nil
	}
	if err := fsutil.WriteFileAtomic(m.path, m.data, 0o644); err != nil {
		return err
	}
	msg := fmt.Sprintf("migrated %s to the VXLAN overlay: the bridge no longer masquerades pod traffic, and pods use the overlay's MTU", m.path)
	klog.FromContext(ctx).Info("Migrated the CNI template to the overlay", "file", m.path)
	res.Notices = append(res.Notices, msg)
	return nil
}
