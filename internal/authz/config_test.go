package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"
	authzconfig "k8s.io/apiserver/pkg/apis/apiserver"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	kubeauthorizer "k8s.io/kubernetes/pkg/kubeapiserver/authorizer"
)

// denyKubeconfig is a file for the webhooks' kubeconfig path, which
// kube-apiserver's validation requires to exist.
func denyKubeconfig(t *testing.T) Webhooks {
	t.Helper()
	p := filepath.Join(t.TempDir(), "authorization-webhook.kubeconfig")
	if err := os.WriteFile(p, []byte("apiVersion: v1\nkind: Config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return Webhooks{Deny: p, RemovedNodes: p}
}

func TestRenderParses(t *testing.T) {
	kc := denyKubeconfig(t)
	cases := []struct {
		mode      Mode
		live      bool
		types     string
		effective string
	}{
		{AlwaysAllow, false, "Webhook,AlwaysAllow,Node,RBAC", "AlwaysAllow"},
		{AlwaysAllow, true, "Webhook,AlwaysAllow,Node,RBAC", "AlwaysAllow"},
		{RBAC, false, "Webhook,Node,RBAC", "Node,RBAC"},
		{RBAC, true, "Webhook,Node,RBAC,Webhook,AlwaysAllow", "Node,RBAC"},
	}
	for _, c := range cases {
		c0, err := Parse("authorization.yaml", Render(c.mode, c.live, kc))
		if err != nil {
			t.Fatalf("%s live=%v: %v", c.mode, c.live, err)
		}
		if got := strings.Join(c0.Types, ","); got != c.types {
			t.Errorf("%s live=%v: types %s, want %s", c.mode, c.live, got, c.types)
		}
		if got := c0.Effective(); got != c.effective {
			t.Errorf("%s live=%v: effective %s, want %s", c.mode, c.live, got, c.effective)
		}
		if m, ok := c0.Mode(); !ok || m != c.mode {
			t.Errorf("%s live=%v: Mode() = %s, %v", c.mode, c.live, m, ok)
		}
	}
}

// TestLiveChainsReload applies kube-apiserver's own reload rule: a new
// config must keep every non-webhook type of the config it started with.
func TestLiveChainsReload(t *testing.T) {
	kc := denyKubeconfig(t)
	types := func(data []byte) sets.Set[authzconfig.AuthorizerType] {
		c, err := Parse("x", data)
		if err != nil {
			t.Fatal(err)
		}
		s := sets.New[authzconfig.AuthorizerType]()
		for _, ty := range c.Types {
			if ty != typeWebhook {
				s.Insert(authzconfig.AuthorizerType(ty))
			}
		}
		return s
	}
	compiler := authorizationcel.NewDefaultCompiler()
	for _, started := range []Mode{AlwaysAllow, RBAC} {
		required := types(Render(started, false, kc))
		if !required.Has(typeNode) || !required.Has(typeRBAC) {
			t.Errorf("started in %s without Node and RBAC: they could never be enabled without a restart", started)
		}
		for _, to := range []Mode{AlwaysAllow, RBAC} {
			if _, err := kubeauthorizer.LoadAndValidateData(Render(to, true, kc), compiler, required); err != nil {
				t.Errorf("started in %s, live switch to %s is refused: %v", started, to, err)
			}
		}
	}
	// Why the live RBAC chain exists: the plain one is refused by an
	// apiserver that started in AlwaysAllow.
	_, err := kubeauthorizer.LoadAndValidateData(Render(RBAC, false, kc), compiler, types(Render(AlwaysAllow, false, kc)))
	if err == nil || !strings.Contains(err.Error(), "missing required types") {
		t.Errorf("upstream accepted dropping AlwaysAllow on reload (%v): the live chain may be simplified", err)
	}
}

func TestStartForm(t *testing.T) {
	kc := denyKubeconfig(t)
	moved := Webhooks{Deny: "/new/path", RemovedNodes: "/new/path2"}
	got, ok := StartForm(Render(RBAC, true, kc), moved)
	if !ok || string(got) != string(Render(RBAC, false, moved)) {
		t.Errorf("StartForm(live RBAC) = %q, %v", got, ok)
	}
	// An older kubeseed's chains, without the removed-nodes webhook, get it.
	for _, m := range []Mode{AlwaysAllow, RBAC} {
		var old []string
		for _, t := range chains[m][false] {
			old = append(old, "- type: "+t+"\n  name: "+strings.ToLower(t))
		}
		data := "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n" + strings.Join(old, "\n") + "\n"
		if got, ok := StartForm([]byte(data), kc); !ok || string(got) != string(Render(m, false, kc)) {
			t.Errorf("StartForm(%s without the removed-nodes webhook) = %q, %v", m, got, ok)
		}
	}
	// Edits that keep the chain are fine; other chains are left alone.
	if _, ok := StartForm(append(Render(RBAC, true, kc), "# edited\n"...), kc); !ok {
		t.Error("a comment stopped StartForm")
	}
	for _, data := range [][]byte{Render(RBAC, false, kc), Render(AlwaysAllow, true, kc), Render(AlwaysAllow, false, kc), []byte("{"),
		[]byte(strings.Replace(string(Render(RBAC, true, kc)), "name: "+DenyWebhookName, "name: other", 1))} {
		if _, ok := StartForm(data, kc); ok {
			t.Errorf("StartForm rewrote:\n%s", data)
		}
	}
}

func TestEffectiveAndMode(t *testing.T) {
	cases := []struct {
		types, names string
		effective    string
		mode         Mode
		managed      bool
	}{
		{"AlwaysAllow", "alwaysallow", "AlwaysAllow", AlwaysAllow, true},
		{"Node,AlwaysAllow", "node,alwaysallow", "AlwaysAllow", AlwaysAllow, true},
		{"RBAC,Node", "rbac,node", "RBAC,Node", "", false},
		{"Node,RBAC", "node,rbac", "Node,RBAC", RBAC, true},
		// AlwaysDeny answers "no opinion" upstream: it does not end a chain.
		{"Node,RBAC,AlwaysDeny,AlwaysAllow", "node,rbac,alwaysdeny,alwaysallow", "AlwaysAllow", AlwaysAllow, true},
		{"AlwaysDeny", "alwaysdeny", "AlwaysDeny", "", false},
		{"Node,RBAC,Webhook,AlwaysAllow", "node,rbac,kubeseed-deny,alwaysallow", "Node,RBAC", RBAC, true},
		{"Webhook,AlwaysAllow", "w,alwaysallow", "Webhook,AlwaysAllow", "", false},
		{"Node,RBAC,Webhook", "node,rbac,w", "Node,RBAC,Webhook", "", false},
		{"Node,RBAC", "node,my-rbac", "Node,RBAC", "", false},
		// The removed-nodes webhook allows nothing: it never sets the mode.
		{"Webhook,AlwaysAllow", "kubeseed-removed-nodes,alwaysallow", "AlwaysAllow", AlwaysAllow, true},
		{"Webhook,Node,RBAC", "kubeseed-removed-nodes,node,rbac", "Node,RBAC", RBAC, true},
	}
	for _, c := range cases {
		ch := Chain{Types: strings.Split(c.types, ","), Names: strings.Split(c.names, ",")}
		if got := ch.Effective(); got != c.effective {
			t.Errorf("%s: effective %s, want %s", c.types, got, c.effective)
		}
		if m, ok := ch.Mode(); m != c.mode || ok != c.managed {
			t.Errorf("%s: Mode() = %q, %v; want %q, %v", c.types, m, ok, c.mode, c.managed)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ name, data, want string }{
		{"not YAML", "{", "authorization.yaml: "},
		{"unknown type", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n- type: Magic\n  name: magic\n", "Unsupported value: \"Magic\""},
		{"empty", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers: []\n", "at least one authorization mode"},
		{"wrong name", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n- type: RBAC\n  name: x\n", "expected name rbac"},
		{"missing webhook kubeconfig", string(Render(RBAC, true, Webhooks{Deny: "/nonexistent/deny.kubeconfig", RemovedNodes: "/nonexistent/deny.kubeconfig"})), "error loading file"},
	}
	for _, c := range cases {
		_, err := Parse("authorization.yaml", []byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "authorization.yaml: ") {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
