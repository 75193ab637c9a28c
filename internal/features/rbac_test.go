package features

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
)

// newLayout writes the args and authorization config of a new node.
func newLayout(t *testing.T) datadir.Layout {
	t.Helper()
	l, err := datadir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ensure(); err != nil {
		t.Fatal(err)
	}
	f := defaults.APIServerArgs(l, 0)
	if err := os.WriteFile(f.Path, f.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, data := range defaults.ConfigFiles(l, 0, 1450) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// kube-apiserver's validation requires the webhooks' kubeconfigs.
	for _, kc := range []string{defaults.DenyWebhookKubeconfig, defaults.RemovedNodesWebhookKubeconfig} {
		if err := os.WriteFile(l.Config(kc), []byte("apiVersion: v1\nkind: Config\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// fakeAPIServer answers SubjectAccessReviews from the authorization config
// on disk, as kube-apiserver does after reloading it. With stuck set it
// keeps answering with the mode it "started" with.
func fakeAPIServer(t *testing.T, l datadir.Layout, stuck bool) *fake.Clientset {
	cs := fake.NewClientset()
	started := currentMode(t, l)
	cs.PrependReactor("create", "subjectaccessreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		mode := started
		if !stuck {
			mode = currentMode(t, l)
		}
		return true, &authzv1.SubjectAccessReview{Status: authzv1.SubjectAccessReviewStatus{Allowed: mode == authz.AlwaysAllow}}, nil
	})
	return cs
}

func currentMode(t *testing.T, l datadir.Layout) authz.Mode {
	data, err := os.ReadFile(l.Config(authz.ConfigFile))
	if err != nil {
		t.Error(err)
		return ""
	}
	c, err := authz.Parse("x", data)
	if err != nil {
		t.Error(err)
		return ""
	}
	m, _ := c.Mode()
	return m
}

func registry(cs kubernetes.Interface, timeout time.Duration) *Registry {
	r := NewRBAC()
	r.Timeout = timeout
	r.Client = func(Node) (kubernetes.Interface, error) { return cs, nil }
	return NewRegistry(r)
}

func TestRBACStoppedNode(t *testing.T) {
	l := newLayout(t)
	var out bytes.Buffer
	n := Node{Layout: l, Out: &out}
	reg := registry(nil, time.Second)
	if err := reg.Enable(context.Background(), "rbac", n); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(l.Config(authz.ConfigFile))
	if string(data) != string(authz.Render(authz.RBAC, false, defaults.Webhooks(l))) {
		t.Errorf("config after enable on a stopped node:\n%s", data)
	}
	if !strings.Contains(out.String(), "next start") {
		t.Errorf("output %q", out.String())
	}
	out.Reset()
	if err := reg.Enable(context.Background(), "rbac", n); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "rbac is already enabled (authorization: Node,RBAC); nothing to do") {
		t.Errorf("second enable: %q", out.String())
	}
	if err := reg.Disable(context.Background(), "rbac", n); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(l.Config(authz.ConfigFile)); string(data) != string(authz.Render(authz.AlwaysAllow, false, defaults.Webhooks(l))) {
		t.Errorf("config after disable:\n%s", data)
	}
	out.Reset()
	if err := reg.Disable(context.Background(), "rbac", n); err != nil || !strings.Contains(out.String(), "already disabled") {
		t.Errorf("second disable: %v %q", err, out.String())
	}
}

func TestRBACRunningNode(t *testing.T) {
	l := newLayout(t)
	cs := fakeAPIServer(t, l, false)
	var out bytes.Buffer
	n := Node{Layout: l, Running: true, Out: &out}
	reg := registry(cs, 10*time.Second)
	if err := reg.Enable(context.Background(), "rbac", n); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(l.Config(authz.ConfigFile)); string(data) != string(authz.Render(authz.RBAC, true, defaults.Webhooks(l))) {
		t.Errorf("a running node needs the live chain:\n%s", data)
	}
	crb, err := cs.RbacV1().ClusterRoleBindings().Get(context.Background(), authz.KubeletClientBinding, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("kubelet-client binding: %v", err)
	}
	if crb.RoleRef.Name != "system:kubelet-api-admin" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "kube-apiserver-kubelet-client" {
		t.Errorf("binding %+v", crb)
	}
	if !strings.Contains(out.String(), "RBAC enabled") {
		t.Errorf("output %q", out.String())
	}
	if err := reg.Disable(context.Background(), "rbac", n); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(l.Config(authz.ConfigFile)); string(data) != string(authz.Render(authz.AlwaysAllow, true, defaults.Webhooks(l))) {
		t.Errorf("config after disable:\n%s", data)
	}
}

func TestRBACNotAppliedIsRolledBack(t *testing.T) {
	l := newLayout(t)
	before, _ := os.ReadFile(l.Config(authz.ConfigFile))
	n := Node{Layout: l, Running: true}
	err := registry(fakeAPIServer(t, l, true), time.Second).Enable(context.Background(), "rbac", n)
	if err == nil || !strings.Contains(err.Error(), "did not apply") || !strings.Contains(err.Error(), "previous file is restored") {
		t.Fatalf("err = %v", err)
	}
	if after, _ := os.ReadFile(l.Config(authz.ConfigFile)); string(after) != string(before) {
		t.Errorf("config not restored:\n%s", after)
	}
}

func TestRBACBadInputChangesNothing(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, l datadir.Layout)
		want  string
	}{
		{"chain kubeseed does not manage", func(t *testing.T, l datadir.Layout) {
			data := "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n- type: RBAC\n  name: rbac\n- type: AlwaysDeny\n  name: alwaysdeny\n"
			if err := os.WriteFile(l.Config(authz.ConfigFile), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "the authorizer chain RBAC,AlwaysDeny is not one kubeseed switches"},
		{"invalid config", func(t *testing.T, l datadir.Layout) {
			if err := os.WriteFile(l.Config(authz.ConfigFile), []byte("authorizers: [\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "authorization.yaml: "},
		{"older args", func(t *testing.T, l datadir.Layout) {
			f, _ := args.Load(l.Args("kube-apiserver"))
			f.Remove("authorization-config")
			f.Set("authorization-mode", "AlwaysAllow")
			if err := os.WriteFile(f.Path, f.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "--authorization-mode is set: this data dir predates"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newLayout(t)
			c.setup(t, l)
			cfg, _ := os.ReadFile(l.Config(authz.ConfigFile))
			apiArgs, _ := os.ReadFile(l.Args("kube-apiserver"))
			err := registry(nil, time.Second).Enable(context.Background(), "rbac", Node{Layout: l})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if after, _ := os.ReadFile(l.Config(authz.ConfigFile)); string(after) != string(cfg) {
				t.Error("authorization config changed")
			}
			if after, _ := os.ReadFile(l.Args("kube-apiserver")); string(after) != string(apiArgs) {
				t.Error("args/kube-apiserver changed")
			}
		})
	}
}

func TestRBACRestoresNodeRestriction(t *testing.T) {
	l := newLayout(t)
	f, _ := args.Load(l.Args("kube-apiserver"))
	f.Set("enable-admission-plugins", "AlwaysPullImages")
	if err := os.WriteFile(f.Path, f.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := registry(nil, time.Second).Enable(context.Background(), "rbac", Node{Layout: l}); err != nil {
		t.Fatal(err)
	}
	f, _ = args.Load(l.Args("kube-apiserver"))
	if v, _ := f.Get("enable-admission-plugins"); v != "AlwaysPullImages,NodeRestriction" {
		t.Errorf("--enable-admission-plugins=%s", v)
	}
}

func TestRegistry(t *testing.T) {
	reg := Default()
	if _, err := reg.Lookup("nope"); err == nil || err.Error() != `unknown feature "nope"; available: dns, rbac` {
		t.Errorf("Lookup: %v", err)
	}
	l := newLayout(t)
	if got := reg.Describe(Node{Layout: l}); !strings.Contains(got, "rbac") || !strings.Contains(got, "disabled") {
		t.Errorf("Describe: %q", got)
	}
}
