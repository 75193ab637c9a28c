package authz

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"
	authzconfig "k8s.io/apiserver/pkg/apis/apiserver"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	kubeauthorizer "k8s.io/kubernetes/pkg/kubeapiserver/authorizer"
)

func TestRenderParses(t *testing.T) {
	cases := []struct {
		mode      Mode
		live      bool
		types     string
		effective string
	}{
		{AlwaysAllow, false, "AlwaysAllow,Node,RBAC", "AlwaysAllow"},
		{AlwaysAllow, true, "AlwaysAllow,Node,RBAC,AlwaysDeny", "AlwaysAllow"},
		{RBAC, false, "Node,RBAC", "Node,RBAC"},
		{RBAC, true, "Node,RBAC,AlwaysDeny,AlwaysAllow", "Node,RBAC"},
	}
	for _, c := range cases {
		c0, err := Parse("authorization.yaml", Render(c.mode, c.live))
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
	types := func(data []byte) sets.Set[authzconfig.AuthorizerType] {
		c, err := Parse("x", data)
		if err != nil {
			t.Fatal(err)
		}
		s := sets.New[authzconfig.AuthorizerType]()
		for _, ty := range c.Types {
			s.Insert(authzconfig.AuthorizerType(ty))
		}
		return s
	}
	compiler := authorizationcel.NewDefaultCompiler()
	for _, started := range []Mode{AlwaysAllow, RBAC} {
		required := types(Render(started, false))
		if !required.Has(typeNode) || !required.Has(typeRBAC) {
			t.Errorf("started in %s without Node and RBAC: they could never be enabled without a restart", started)
		}
		for _, to := range []Mode{AlwaysAllow, RBAC} {
			if _, err := kubeauthorizer.LoadAndValidateData(Render(to, true), compiler, required); err != nil {
				t.Errorf("started in %s, live switch to %s is refused: %v", started, to, err)
			}
		}
	}
	// Why the live chains exist: the plain RBAC chain is refused by an
	// apiserver that started in AlwaysAllow.
	_, err := kubeauthorizer.LoadAndValidateData(Render(RBAC, false), compiler, types(Render(AlwaysAllow, false)))
	if err == nil || !strings.Contains(err.Error(), "missing required types") {
		t.Errorf("upstream accepted dropping AlwaysAllow on reload (%v): the live chains may be simplified", err)
	}
}

func TestStartForm(t *testing.T) {
	for _, m := range []Mode{AlwaysAllow, RBAC} {
		got, ok := StartForm(Render(m, true))
		if !ok || string(got) != string(Render(m, false)) {
			t.Errorf("StartForm(live %s) = %q, %v", m, got, ok)
		}
		if _, ok := StartForm(Render(m, false)); ok {
			t.Errorf("StartForm(start %s) reported a change", m)
		}
	}
	if _, ok := StartForm(append(Render(RBAC, true), "# edited\n"...)); ok {
		t.Error("StartForm rewrote a file edited by hand")
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
		{"Node,RBAC,AlwaysDeny", "node,rbac,alwaysdeny", "Node,RBAC", RBAC, true},
		{"AlwaysDeny", "alwaysdeny", "AlwaysDeny", "", false},
		{"Webhook,AlwaysAllow", "w,alwaysallow", "Webhook,AlwaysAllow", "", false},
		{"Node,RBAC,Webhook", "node,rbac,w", "Node,RBAC,Webhook", "", false},
		{"Node,RBAC", "node,my-rbac", "Node,RBAC", "", false},
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
	}
	for _, c := range cases {
		_, err := Parse("authorization.yaml", []byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "authorization.yaml: ") {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
