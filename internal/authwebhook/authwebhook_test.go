package authwebhook

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/util/webhook"
	upstreamtoken "k8s.io/apiserver/plugin/pkg/authenticator/token/webhook"

	"github.com/kubeseed/kubeseed/internal/credentials"
	"github.com/kubeseed/kubeseed/internal/pki"
)

const (
	adminTok = "admin-token-0123456789"
	bobTok   = "bob-token-0123456789"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Rename into place, as every writer of the token file does.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_tokens.csv")
	writeFile(t, path, adminTok+",admin,admin,system:masters\n"+bobTok+",bob,uid-bob\n")
	s := NewStore(path)
	if changed, err := s.Reload(); err != nil || !changed {
		t.Fatalf("first Reload = %v, %v", changed, err)
	}
	cases := []struct {
		name, token, user string
		groups            []string
		ok                bool
	}{
		{"admin", adminTok, "admin", []string{"system:masters"}, true},
		{"no groups", bobTok, "bob", []string{}, true},
		{"unknown", "nope", "", nil, false},
		{"empty", "", "", nil, false},
		{"prefix of a token", bobTok[:10], "", nil, false},
	}
	for _, c := range cases {
		u, ok := s.Authenticate(c.token)
		if ok != c.ok || u.Username != c.user || (ok && !slices.Equal(u.Groups, c.groups)) {
			t.Errorf("%s: got %+v %v", c.name, u, ok)
		}
	}
	if u, _ := s.Authenticate(bobTok); u.UID != "uid-bob" {
		t.Errorf("uid %q", u.UID)
	}

	if changed, err := s.Reload(); err != nil || changed {
		t.Errorf("Reload of an unchanged file = %v, %v", changed, err)
	}

	// A broken file is reported with path:line, once, and fails closed.
	writeFile(t, path, adminTok+",admin,admin\nbroken\n")
	_, err := s.Reload()
	if err == nil || !strings.HasPrefix(err.Error(), path+":2: ") {
		t.Fatalf("Reload of a broken file: %v", err)
	}
	if strings.Contains(err.Error(), adminTok) {
		t.Errorf("error leaks a token: %v", err)
	}
	if changed, err := s.Reload(); err != nil || changed {
		t.Errorf("second Reload of the same broken file = %v, %v; want it reported once", changed, err)
	}
	if _, ok := s.Authenticate(bobTok); ok {
		t.Error("a token of the last good set still authenticates while the file is broken")
	}

	// Fixed: the new set replaces the old one.
	writeFile(t, path, adminTok+",admin,admin\n")
	if changed, err := s.Reload(); err != nil || !changed {
		t.Fatalf("Reload of the fixed file = %v, %v", changed, err)
	}
	if _, ok := s.Authenticate(bobTok); ok {
		t.Error("a removed token still authenticates")
	}
	if s.Len() != 1 {
		t.Errorf("Len = %d", s.Len())
	}
}

// TestStoreFailsClosed breaks a loaded token file in each way and checks
// that no token authenticates until it is fixed, and that Err says why.
func TestStoreFailsClosed(t *testing.T) {
	good := adminTok + ",admin,admin,system:masters\n" + bobTok + ",bob,uid-bob\n"
	cases := []struct {
		name  string
		spoil func(t *testing.T, path string)
		want  string // Err's prefix, after the path
	}{
		{"column count", func(t *testing.T, path string) { writeFile(t, path, good+"x,y\n") }, ":3: "},
		{"duplicate token", func(t *testing.T, path string) { writeFile(t, path, good+bobTok+",carol,carol\n") }, ":3: "},
		{"comment line", func(t *testing.T, path string) { writeFile(t, path, "# tokens\n"+good) }, ":1: "},
		{"missing file", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "known_tokens.csv")
			writeFile(t, path, good)
			s := NewStore(path)
			if _, err := s.Reload(); err != nil {
				t.Fatal(err)
			}
			c.spoil(t, path)
			changed, err := s.Reload()
			if err == nil || !changed {
				t.Fatalf("Reload of a broken file = %v, %v; want changed and an error", changed, err)
			}
			if got := s.Err(); got == nil || !strings.Contains(got.Error(), path+c.want) {
				t.Errorf("Err() = %v, want it to name %s%s", got, path, c.want)
			}
			for _, tok := range []string{adminTok, bobTok} {
				if _, ok := s.Authenticate(tok); ok {
					t.Errorf("token %.8s… authenticates while the file is broken", tok)
				}
			}
			if _, ok := s.Active(); ok || s.Len() != 0 {
				t.Errorf("Active %v, Len %d while the file is broken", ok, s.Len())
			}
			if changed, err := s.Reload(); changed || err != nil {
				t.Errorf("second Reload = %v, %v; want the problem reported once", changed, err)
			}
			if s.Err() == nil {
				t.Error("Err() forgot the problem after the second Reload")
			}
			// Fixed, even back to the very content last loaded: it resumes.
			writeFile(t, path, good)
			if changed, err := s.Reload(); err != nil || !changed {
				t.Fatalf("Reload of the fixed file = %v, %v", changed, err)
			}
			if _, ok := s.Authenticate(bobTok); !ok || s.Err() != nil {
				t.Errorf("fixed file: bob authenticates %v, Err %v", ok, s.Err())
			}
		})
	}
}

// pkiFiles issues a CA, the webhook's serving certificate and two client
// certificates into dir.
func pkiFiles(t *testing.T, dir string) {
	t.Helper()
	store := pki.Store{Dir: dir}
	now := time.Now()
	ca, err := pki.Issue(pki.Spec{Name: "ca", CommonName: "test-ca", Lifetime: pki.Year}, pki.Inputs{}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	specs := []pki.Spec{
		{Name: "ca", CommonName: "test-ca", Lifetime: pki.Year},
		mustSpec(t, "auth-webhook"),
		mustSpec(t, "apiserver-auth-webhook-client"),
		pki.UserSpec("mallory", nil, time.Hour),
	}
	for _, spec := range specs {
		kp := ca
		if spec.CA != "" {
			if kp, err = pki.Issue(spec, pki.Inputs{}, ca, now); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.Save(spec, kp); err != nil {
			t.Fatal(err)
		}
	}
}

func mustSpec(t *testing.T, name string) pki.Spec {
	s, ok := pki.Lookup(name)
	if !ok {
		t.Fatalf("no %s in pki.Table", name)
	}
	return s
}

func startServer(t *testing.T) (dir string, o *Options, tokens string) {
	t.Helper()
	dir = t.TempDir()
	pkiFiles(t, dir)
	tokens = filepath.Join(dir, "known_tokens.csv")
	writeFile(t, tokens, adminTok+",admin,admin,\"system:masters,devs\"\n")
	o = NewOptions()
	o.TLSCertFile, o.TLSKeyFile = filepath.Join(dir, "auth-webhook.crt"), filepath.Join(dir, "auth-webhook.key")
	o.ClientCAFile, o.TokenAuthFile = filepath.Join(dir, "ca.crt"), tokens
	o.ReloadInterval = 100 * time.Millisecond
	if err := o.Validate(); err == nil {
		t.Fatal("Validate accepted port 0")
	}
	o.SecurePort = 1 // replaced below by the bound port
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	store := NewStore(tokens)
	if _, err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	cfg := o.Config()
	cfg.Addr = "127.0.0.1:0"
	srv, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	o.SecurePort = srv.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return dir, o, tokens
}

// upstreamClient is kube-apiserver's own webhook token authenticator, built
// from the kubeconfig kubeseed writes for it.
func upstreamClient(t *testing.T, dir string, o *Options) *upstreamtoken.WebhookTokenAuthenticator {
	t.Helper()
	// Relative paths, as kubeseed writes them: resolved from the
	// kubeconfig's directory.
	data, err := ClientKubeconfig(o.URL(), "../ca.crt", "../apiserver-auth-webhook-client.crt", "../apiserver-auth-webhook-client.key")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config", "token-webhook.kubeconfig")
	writeFile(t, path, string(data))
	cfg, err := webhook.LoadKubeconfig(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := upstreamtoken.New(cfg, "v1", authenticator.Audiences{"https://kubernetes.default.svc"},
		wait.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 1})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestServerWithUpstreamClient(t *testing.T) {
	dir, o, tokens := startServer(t)
	a := upstreamClient(t, dir, o)
	ctx := authenticator.WithAudiences(context.Background(), authenticator.Audiences{"https://kubernetes.default.svc"})

	resp, ok, err := a.AuthenticateToken(ctx, adminTok)
	if err != nil || !ok {
		t.Fatalf("admin token: ok %v err %v", ok, err)
	}
	if u := resp.User; u.GetName() != "admin" || u.GetUID() != "admin" || !slices.Equal(u.GetGroups(), []string{"system:masters", "devs"}) {
		t.Errorf("admin user %+v", u)
	}
	if !slices.Equal(resp.Audiences, authenticator.Audiences{"https://kubernetes.default.svc"}) {
		t.Errorf("audiences %v", resp.Audiences)
	}
	if _, ok, err := a.AuthenticateToken(ctx, "not-a-token"); ok || err != nil {
		t.Errorf("unknown token: ok %v err %v", ok, err)
	}

	// A token added to the file authenticates after the next reload.
	writeFile(t, tokens, adminTok+",admin,admin\n"+bobTok+",bob,bob,devs\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, ok, err := a.AuthenticateToken(ctx, bobTok)
		if ok && err == nil && resp.User.GetName() == "bob" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("added token not accepted after 5s: ok %v err %v", ok, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServerRefusesOtherClients(t *testing.T) {
	dir, o, _ := startServer(t)
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)
	get := func(cert string) error {
		cfg := &tls.Config{RootCAs: pool}
		if cert != "" {
			c, err := tls.LoadX509KeyPair(filepath.Join(dir, cert+".crt"), filepath.Join(dir, cert+".key"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(o.BaseURL() + HealthPath)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("health with %q: HTTP %d", cert, resp.StatusCode)
		}
		return nil
	}
	if err := get("apiserver-auth-webhook-client"); err != nil {
		t.Errorf("kube-apiserver's certificate refused: %v", err)
	}
	if err := get(""); err == nil {
		t.Error("a client without a certificate was served")
	}
	// A user's certificate from the same CA must not let them probe tokens.
	if err := get("user-mallory"); err == nil {
		t.Error("a user certificate from the cluster CA was served")
	}
}

func TestServerRejectsBadReviews(t *testing.T) {
	dir, o, _ := startServer(t)
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, "apiserver-auth-webhook-client.crt"), filepath.Join(dir, "apiserver-auth-webhook-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{c}}}}
	defer client.CloseIdleConnections()
	cases := []struct{ name, body string }{
		{"not JSON", "{"},
		{"v1beta1", `{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"` + adminTok + `"}}`},
		{"wrong kind", `{"apiVersion":"authentication.k8s.io/v1","kind":"SubjectAccessReview"}`},
	}
	for _, tc := range cases {
		resp, err := client.Post(o.URL(), "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", tc.name, resp.StatusCode)
		}
	}
}

func TestServerDenies(t *testing.T) {
	dir, o, _ := startServer(t)
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, "apiserver-auth-webhook-client.crt"), filepath.Join(dir, "apiserver-auth-webhook-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{c}}}}
	defer client.CloseIdleConnections()
	sar := `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"admin","groups":["system:masters"],"resourceAttributes":{"verb":"get","resource":"secrets"}}}`
	resp, err := client.Post(o.DenyURL(), "application/json", strings.NewReader(sar))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got authzv1.SubjectAccessReview
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || got.Status.Allowed || !got.Status.Denied || got.Kind != "SubjectAccessReview" || got.APIVersion != "authorization.k8s.io/v1" {
		t.Errorf("HTTP %d, %+v", resp.StatusCode, got)
	}
	resp, err = client.Post(o.DenyURL(), "application/json", strings.NewReader(`{"apiVersion":"authorization.k8s.io/v1beta1","kind":"SubjectAccessReview"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("v1beta1 review: HTTP %d, want 400", resp.StatusCode)
	}
}

func TestOptionsValidate(t *testing.T) {
	base := func() *Options {
		o := NewOptions()
		o.SecurePort, o.TLSCertFile, o.TLSKeyFile, o.ClientCAFile, o.TokenAuthFile = 16444, "c", "k", "ca", "t"
		return o
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"port", func(o *Options) { o.SecurePort = 70000 }, "--secure-port=70000"},
		{"public bind", func(o *Options) { o.BindAddress = "0.0.0.0" }, "--bind-address=0.0.0.0: must be a loopback IP"},
		{"no token file", func(o *Options) { o.TokenAuthFile = "" }, "--token-auth-file is required"},
		{"no clients", func(o *Options) { o.AllowedClients = nil }, "--allowed-client-names is empty"},
		{"reload too fast", func(o *Options) { o.ReloadInterval = time.Millisecond }, "--reload-interval=1ms"},
	}
	for _, c := range cases {
		o := base()
		c.edit(o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestServerTakesUpRenewedCertificate(t *testing.T) {
	dir, o, _ := startServer(t)
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)
	client, err := tls.LoadX509KeyPair(filepath.Join(dir, "apiserver-auth-webhook-client.crt"), filepath.Join(dir, "apiserver-auth-webhook-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	served := func() string {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(o.BaseURL(), "https://"), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := served()
	// Renew as certificate renewal does: same key, new .crt, renamed into place.
	store := pki.Store{Dir: dir}
	ca, err := store.Load(pki.Spec{Name: "ca", CommonName: "test-ca", Lifetime: pki.Year})
	if err != nil {
		t.Fatal(err)
	}
	spec := mustSpec(t, "auth-webhook")
	old, err := store.Load(spec)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := pki.IssueWithKey(spec, pki.Inputs{}, ca, old.Key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(spec, renewed); err != nil {
		t.Fatal(err)
	}
	want := renewed.Cert.SerialNumber.String()
	deadline := time.Now().Add(5 * time.Second)
	for served() != want {
		if time.Now().After(deadline) {
			t.Fatalf("still serving %s after a renewal; want %s", before, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStoredDigestsAndWaitLoaded checks a token stored as its digest
// authenticates, that a client can wait for the webhook to use a given
// file, as `kubeseed token remove` does, and that /loaded reports a
// rejected file.
func TestStoredDigestsAndWaitLoaded(t *testing.T) {
	dir, o, tokens := startServer(t)
	c, err := NewClient(o, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "apiserver-auth-webhook-client.crt"), filepath.Join(dir, "apiserver-auth-webhook-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	content := adminTok + ",admin,admin\n" + credentials.HashToken(bobTok) + ",bob,bob,devs\n"
	writeFile(t, tokens, content)
	if err := c.WaitLoaded(ctx, sha256.Sum256([]byte(content))); err != nil {
		t.Fatalf("WaitLoaded: %v", err)
	}
	for tok, want := range map[string]bool{bobTok: true, credentials.HashToken(bobTok): false, adminTok: true} {
		if got, err := c.Authenticated(ctx, tok); err != nil || got != want {
			t.Errorf("token %.12s…: authenticated %v (%v), want %v", tok, got, err, want)
		}
	}
	// A broken file: the webhook refuses every token and says why.
	writeFile(t, tokens, content+"broken\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := c.Loaded(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Err != "" {
			if !strings.HasPrefix(st.Err, tokens+":3: ") || st.Digest != "" {
				t.Errorf("Loaded = %+v, want the error at %s:3", st, tokens)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook did not reject the broken file within 5s: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := c.Authenticated(ctx, adminTok); err != nil || got {
		t.Errorf("admin token with a broken file: authenticated %v (%v), want refused", got, err)
	}
	writeFile(t, tokens, content)
	if err := c.WaitLoaded(ctx, sha256.Sum256([]byte(content))); err != nil {
		t.Fatalf("WaitLoaded after the fix: %v", err)
	}
	if got, err := c.Authenticated(ctx, adminTok); err != nil || !got {
		t.Errorf("admin token after the fix: authenticated %v (%v)", got, err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelShort()
	if err := c.WaitLoaded(short, sha256.Sum256([]byte("never written"))); err == nil || !strings.Contains(err.Error(), "older token file") {
		t.Errorf("WaitLoaded for content never written: %v", err)
	}
}

func TestRemovedNodes(t *testing.T) {
	s := &Server{cfg: Config{Removed: func(name string) bool { return name == "gone" }}}
	cases := []struct {
		user          string
		denied        bool
		reasonMention string
	}{
		{user: "system:node:gone", denied: true, reasonMention: "node gone was removed"},
		{user: "system:node:here"},
		{user: "gone"}, // not a node's name
		{user: "system:node:"},
	}
	for _, c := range cases {
		sar := fmt.Sprintf(`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":%q,"groups":["system:nodes"],"resourceAttributes":{"verb":"get","resource":"nodes"}}}`, c.user)
		rec := httptest.NewRecorder()
		s.removedNodes(rec, httptest.NewRequest(http.MethodPost, RemovedNodesPath, strings.NewReader(sar)))
		var got authzv1.SubjectAccessReview
		if err := json.NewDecoder(rec.Body).Decode(&got); err != nil {
			t.Fatalf("%s: %v", c.user, err)
		}
		if rec.Code != 200 || got.Status.Allowed || got.Status.Denied != c.denied || !strings.Contains(got.Status.Reason, c.reasonMention) {
			t.Errorf("%s: HTTP %d, %+v; want denied=%v", c.user, rec.Code, got.Status, c.denied)
		}
	}
	// Without a record nobody is removed.
	rec := httptest.NewRecorder()
	(&Server{}).removedNodes(rec, httptest.NewRequest(http.MethodPost, RemovedNodesPath, strings.NewReader(
		`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"system:node:gone"}}`)))
	if strings.Contains(rec.Body.String(), `"denied":true`) {
		t.Errorf("no record, yet: %s", rec.Body)
	}
}
