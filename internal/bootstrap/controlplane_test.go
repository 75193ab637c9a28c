package bootstrap

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/pki"
)

var sharedKeys = []string{"ca", "front-proxy-ca", "etcd-ca", "serviceaccount"}

// clusterKeys are the shared keys of a first node, as its agent sends them.
func clusterKeys(t *testing.T) (map[string][]byte, *pki.KeyPair) {
	t.Helper()
	first := prepared(t)
	store := pki.Store{Dir: first.CertsDir()}
	out := map[string][]byte{}
	var ca *pki.KeyPair
	for _, name := range sharedKeys {
		spec, _ := pki.Lookup(name)
		kp, err := store.Load(spec)
		if err != nil {
			t.Fatal(err)
		}
		if name == "ca" {
			ca = kp
		}
		key, _ := pki.EncodeKey(kp.Key)
		out[name+".key"] = key
		if !spec.KeyOnly {
			out[name+".crt"] = pki.EncodeCert(kp.Cert)
		}
	}
	return out, ca
}

func joiningFiles(keys map[string][]byte) ControlPlaneFiles {
	return ControlPlaneFiles{
		NodeName: "cp-2", PortOffset: 100, PeerURL: "https://192.0.2.11:19101",
		InitialCluster: "cp-2=https://192.0.2.11:19101,node-a=https://192.0.2.10:19101",
		Keys:           keys, AuthorizationMode: authz.RBAC,
	}
}

// joinedDir is a data dir as a control-plane join writes it.
func joinedDir(t *testing.T) (datadir.Layout, *pki.KeyPair) {
	t.Helper()
	keys, ca := clusterKeys(t)
	l, err := datadir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteControlPlane(context.Background(), l, joiningFiles(keys), sharedKeys, ca.Cert); err != nil {
		t.Fatal(err)
	}
	return l, ca
}

func TestWriteControlPlaneThenPrepareIssuesUnderTheClusterCA(t *testing.T) {
	l, ca := joinedDir(t)
	ctx := context.Background()
	etcd, err := args.Load(l.Args(defaults.EtcdComponent))
	if err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{
		"initial-cluster-state":       "existing",
		"initial-advertise-peer-urls": "https://192.0.2.11:19101",
		"name":                        "cp-2",
	} {
		if got, _ := etcd.Get(flag); got != want {
			t.Errorf("args/etcd --%s=%q, want %q", flag, got, want)
		}
	}
	kubelet, err := args.Load(l.Args(defaults.KubeletComponent))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := kubelet.Get("node-ip"); got != "192.0.2.11" {
		t.Errorf("args/kubelet --node-ip=%q, want the peer URL's 192.0.2.11", got)
	}
	if data, _ := os.ReadFile(l.Config(authz.ConfigFile)); !strings.Contains(string(data), "# Mode: RBAC") {
		t.Errorf("authorization config is not the cluster's mode:\n%s", data)
	}
	opts := testOptions()
	opts.NodeName = "cp-2"
	if _, err := Prepare(ctx, l, opts); err != nil {
		t.Fatal(err)
	}
	store := pki.Store{Dir: l.CertsDir()}
	for _, name := range []string{"server", "kubelet", "etcd-peer", "front-proxy-client"} {
		spec, _ := pki.Lookup(name)
		kp, err := store.Load(spec)
		if err != nil {
			t.Fatal(err)
		}
		signer, _ := pki.Lookup(spec.CA)
		caPair, err := store.Load(signer)
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.Verify(spec, kp, caPair); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got, _ := store.Load(pki.Spec{Name: "ca"}); !got.Cert.Equal(ca.Cert) {
		t.Error("the joined node's CA is not the cluster's")
	}
	if again, _ := args.Load(l.Args(defaults.EtcdComponent)); string(again.Bytes()) != string(etcd.Bytes()) {
		t.Error("Prepare changed the joined node's args/etcd")
	}
	if again, _ := args.Load(l.Args(defaults.KubeletComponent)); string(again.Bytes()) != string(kubelet.Bytes()) {
		t.Error("Prepare changed the joined node's args/kubelet")
	}
}

// A control plane that joined before kubeseed set the kubelet's --node-ip
// gets it at its next start.
func TestJoinedControlPlaneGainsNodeIP(t *testing.T) {
	l, _ := joinedDir(t)
	ctx := context.Background()
	opts := testOptions()
	opts.NodeName = "cp-2"
	if _, err := Prepare(ctx, l, opts); err != nil {
		t.Fatal(err)
	}
	path := l.Args(defaults.KubeletComponent)
	old, err := args.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	old.Remove("node-ip")
	must(t, os.WriteFile(path, old.Bytes(), 0o644))
	res, err := Prepare(ctx, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	kubelet, err := args.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := kubelet.Get("node-ip"); got != "192.0.2.11" {
		t.Errorf("args/kubelet --node-ip=%q after the migration, want 192.0.2.11", got)
	}
	if !strings.Contains(strings.Join(res.Notices, "\n"), "--node-ip=192.0.2.11") {
		t.Errorf("the migration is not among the notices: %q", res.Notices)
	}
	// A first node (no joined etcd member) is left alone.
	first := prepared(t)
	if f, _ := args.Load(first.Args(defaults.KubeletComponent)); f != nil {
		if _, set := f.Get("node-ip"); set {
			t.Error("a first node's kubelet got a --node-ip")
		}
	}
}

func TestWriteControlPlaneRefusesABadAnswer(t *testing.T) {
	keys, ca := clusterKeys(t)
	otherKeys, _ := clusterKeys(t)
	for _, tc := range []struct {
		name   string
		change func(f *ControlPlaneFiles)
		want   string
	}{
		{"a key missing", func(f *ControlPlaneFiles) { delete(f.Keys, "etcd-ca.key") }, "etcd-ca"},
		{"a certificate for another key", func(f *ControlPlaneFiles) { f.Keys["ca.key"] = otherKeys["ca.key"] }, "is not for"},
		{"another CA than the agent's", func(f *ControlPlaneFiles) {
			f.Keys["ca.key"], f.Keys["ca.crt"] = otherKeys["ca.key"], otherKeys["ca.crt"]
		}, "not the CA"},
		{"an unknown mode", func(f *ControlPlaneFiles) { f.AuthorizationMode = "ABAC" }, "ABAC"},
		{"a peer URL without an IP", func(f *ControlPlaneFiles) {
			f.PeerURL = "https://cp-2.example:19101"
			f.InitialCluster = "cp-2=https://cp-2.example:19101"
		}, "does not name an IP"},
		{"etcd's cluster without this node", func(f *ControlPlaneFiles) { f.InitialCluster = "node-a=https://192.0.2.10:19101" }, "lacks this node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := joiningFiles(map[string][]byte{})
			for k, v := range keys {
				f.Keys[k] = v
			}
			tc.change(&f)
			l, err := datadir.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			err = WriteControlPlane(context.Background(), l, f, sharedKeys, ca.Cert)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteControlPlane: %v, want %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(l.Root); len(entries) != 0 {
				t.Errorf("a refused answer wrote %d entries", len(entries))
			}
		})
	}
}
