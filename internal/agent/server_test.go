package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/cert"

	"github.com/kubeseed/kubeseed/internal/jointoken"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/testutil/etcdtest"
)

type testAgent struct {
	addr   string
	pin    string
	ca     *pki.KeyPair
	kube   *fake.Clientset
	tokens *jointoken.Store
}

func startAgent(t *testing.T) *testAgent {
	t.Helper()
	return startAgentWith(t, nil)
}

// startAgentWith lets change adjust the agent's Config first.
func startAgentWith(t *testing.T, change func(*Config)) *testAgent {
	t.Helper()
	caSpec, _ := pki.Lookup("ca")
	ca, err := pki.Issue(caSpec, pki.Inputs{}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leafSpec, _ := pki.Lookup("cluster-agent")
	leaf, err := pki.Issue(leafSpec, pki.Inputs{NodeName: "cp", HostIPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, ca, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyPEM, _ := pki.EncodeKey(leaf.Key)
	certFile, keyFile := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	if err := os.WriteFile(certFile, pki.EncodeCert(leaf.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	port := int32(16443)
	kube := fake.NewClientset(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{"kubernetes.io/service-name": "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.1"}}},
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
	})
	tokens := jointoken.NewStore(etcdtest.Client(t, etcdtest.Start(t)), time.Now)
	cfg := Config{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, CA: ca, Tokens: tokens, Kube: kube,
		Cluster: Cluster{ClusterCIDR: "10.1.0.0/16", ServiceCIDR: "10.152.183.0/24", ClusterDNS: "10.152.183.10", ClusterDomain: "cluster.local"},
		Version: "v1.37.2", MaxFailures: 3}
	if change != nil {
		change(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &testAgent{addr: srv.Addr().String(), pin: jointoken.CAHash(ca.Cert), ca: ca, kube: kube, tokens: tokens}
}

func csrs(t *testing.T) (map[string]crypto.Signer, map[string][]byte) {
	t.Helper()
	keys, out := map[string]crypto.Signer{}, map[string][]byte{}
	for _, name := range WorkerCSRs {
		key, err := pki.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		// The subject asks for more than a worker may have; the agent
		// must ignore it.
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}}, key)
		if err != nil {
			t.Fatal(err)
		}
		keys[name], out[name] = key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	return keys, out
}

func (a *testAgent) token(t *testing.T) jointoken.Token {
	t.Helper()
	tok, _, err := a.tokens.Create(context.Background(), jointoken.Worker, time.Hour, 1, "test")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (a *testAgent) record(t *testing.T, id string) (jointoken.Record, bool) {
	t.Helper()
	recs, err := a.tokens.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == id {
			return r, true
		}
	}
	return jointoken.Record{}, false
}

func refusal(t *testing.T, err error, kind string, status int) {
	t.Helper()
	var r *RefusedError
	if !errors.As(err, &r) || r.Kind != kind || r.Status != status {
		t.Fatalf("got %v, want a %s refusal with HTTP %d", err, kind, status)
	}
}

func TestJoinSignsWithTheAgentsSubjectsAndCompletes(t *testing.T) {
	a := startAgent(t)
	tok := a.token(t)
	keys, reqs := csrs(t)
	ctx := context.Background()
	resp, err := NewClient(a.addr, a.pin, nil).Join(ctx, JoinRequest{Token: tok.String(), Role: jointoken.Worker, NodeName: "w1", Version: "v1.37.2", CSRs: reqs})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.APIServers, []string{"192.0.2.1:16443"}) || resp.NodeIP != "127.0.0.1" || resp.Cluster.ClusterDNS != "10.152.183.10" {
		t.Errorf("answer %+v", resp)
	}
	assertWorkerCerts(t, a.ca, resp.Certs, keys, "w1", 90*24*time.Hour)
	if rec, ok := a.record(t, tok.ID); !ok || len(rec.Reservations) != 1 || rec.UsesLeft != 1 {
		t.Fatalf("after the join request the token should be reserved, not used: %+v %v", rec, ok)
	}

	// Completing needs the node's own certificate.
	kubelet := tlsCert(t, resp.Certs[KubeletClientCSR], keys[KubeletClientCSR])
	proxy := tlsCert(t, resp.Certs[ProxyCSR], keys[ProxyCSR])
	done := CompleteRequest{TokenID: resp.TokenID, Attempt: resp.Attempt}
	refusal(t, NewClient(a.addr, a.pin, nil).Complete(ctx, done), KindRequest, 401)
	refusal(t, NewClient(a.addr, a.pin, &proxy).Complete(ctx, done), KindRequest, 401)
	if _, err := a.kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := NewClient(a.addr, a.pin, &kubelet).Complete(ctx, done); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.record(t, tok.ID); ok {
		t.Error("a single-use token is still there after its join completed")
	}
	n, _ := a.kube.CoreV1().Nodes().Get(ctx, "w1", metav1.GetOptions{})
	if _, ok := n.Labels["node-role.kubernetes.io/worker"]; !ok {
		t.Errorf("the worker is not labelled: %v", n.Labels)
	}
	_, err = NewClient(a.addr, a.pin, nil).Join(ctx, JoinRequest{Token: tok.String(), Role: jointoken.Worker, NodeName: "w2", Version: "v1.37.2", CSRs: reqs})
	refusal(t, err, KindToken, 401)
}

// assertWorkerCerts checks what the agent signed for node: the subjects and
// SANs the agent sets (the CSRs asked for admin), the worker's own keys,
// the cluster CA's signature and a lifetime of at most life.
func assertWorkerCerts(t *testing.T, ca *pki.KeyPair, certPEMs map[string][]byte, keys map[string]crypto.Signer, node string, life time.Duration) {
	t.Helper()
	want := map[string]struct {
		cn, org string
		usage   x509.ExtKeyUsage
	}{
		KubeletClientCSR:  {"system:node:" + node, "system:nodes", x509.ExtKeyUsageClientAuth},
		KubeletServingCSR: {"system:node:" + node, "", x509.ExtKeyUsageServerAuth},
		ProxyCSR:          {"system:kube-proxy", "", x509.ExtKeyUsageClientAuth},
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for name, w := range want {
		certs, err := cert.ParseCertsPEM(certPEMs[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := certs[0]
		if c.Subject.CommonName != w.cn || strings.Join(c.Subject.Organization, ",") != w.org {
			t.Errorf("%s: subject %v, want CN %s O %q", name, c.Subject, w.cn, w.org)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{w.usage}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(keys[name].Public()) {
			t.Errorf("%s: not for the worker's key", name)
		}
		if left := time.Until(c.NotAfter); left > life || left < life-time.Minute {
			t.Errorf("%s: %s left, want the worker lifetime %s", name, left.Round(time.Second), life)
		}
	}
	serving, _ := cert.ParseCertsPEM(certPEMs[KubeletServingCSR])
	if !slices.Contains(serving[0].DNSNames, node) || !slices.ContainsFunc(serving[0].IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) {
		t.Errorf("serving SANs %v %v lack the node's name and address", serving[0].DNSNames, serving[0].IPAddresses)
	}
}

func tlsCert(t *testing.T, certPEM []byte, key crypto.Signer) tls.Certificate {
	t.Helper()
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRefusedJoinsKeepTheToken: whatever is wrong, a refused join leaves
// the token as it was.
func TestRefusedJoinsKeepTheToken(t *testing.T) {
	a := startAgent(t)
	ctx := context.Background()
	if _, err := a.kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "taken"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, reqs := csrs(t)
	oneShort := map[string][]byte{KubeletClientCSR: reqs[KubeletClientCSR], ProxyCSR: reqs[ProxyCSR]}
	cases := []struct {
		name   string
		req    func(tok string) JoinRequest
		kind   string
		status int
	}{
		{"node name taken", func(tok string) JoinRequest {
			return JoinRequest{Token: tok, Role: jointoken.Worker, NodeName: "taken", Version: "v1.37.2", CSRs: reqs}
		}, KindPreflight, 409},
		{"other version", func(tok string) JoinRequest {
			return JoinRequest{Token: tok, Role: jointoken.Worker, NodeName: "w", Version: "v1.36.0", CSRs: reqs}
		}, KindPreflight, 409},
		{"a CSR missing", func(tok string) JoinRequest {
			return JoinRequest{Token: tok, Role: jointoken.Worker, NodeName: "w", Version: "v1.37.2", CSRs: oneShort}
		}, KindRequest, 400},
		{"bad node name", func(tok string) JoinRequest {
			return JoinRequest{Token: tok, Role: jointoken.Worker, NodeName: "Not_A_Name", Version: "v1.37.2", CSRs: reqs}
		}, KindRequest, 400},
		{"control-plane role", func(tok string) JoinRequest {
			return JoinRequest{Token: tok, Role: jointoken.ControlPlane, NodeName: "w", Version: "v1.37.2", CSRs: reqs}
		}, KindRequest, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := a.token(t)
			_, err := NewClient(a.addr, a.pin, nil).Join(ctx, c.req(tok.String()))
			refusal(t, err, c.kind, c.status)
			if rec, ok := a.record(t, tok.ID); !ok || rec.UsesLeft != 1 || len(rec.Reservations) != 0 {
				t.Errorf("the refused join changed the token: %+v %v", rec, ok)
			}
		})
	}
}

func TestJoinFromATakenAddressIsRefused(t *testing.T) {
	a := startAgent(t)
	ctx := context.Background()
	other := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}}}
	if _, err := a.kube.CoreV1().Nodes().Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, reqs := csrs(t)
	tok := a.token(t)
	_, err := NewClient(a.addr, a.pin, nil).Join(ctx, JoinRequest{Token: tok.String(), Role: jointoken.Worker, NodeName: "w", Version: "v1.37.2", CSRs: reqs})
	refusal(t, err, KindPreflight, 409)
	if err == nil || !strings.Contains(err.Error(), `node "other" already has the address 127.0.0.1`) {
		t.Errorf("refusal %v does not name the node and address", err)
	}
	if rec, ok := a.record(t, tok.ID); !ok || rec.UsesLeft != 1 || len(rec.Reservations) != 0 {
		t.Errorf("the refused join changed the token: %+v %v", rec, ok)
	}
}

func TestWrongPinSendsNothingAndGuessesAreLimited(t *testing.T) {
	a := startAgent(t)
	ctx := context.Background()
	tok := a.token(t)
	_, reqs := csrs(t)
	req := JoinRequest{Token: tok.String(), Role: jointoken.Worker, NodeName: "w", Version: "v1.37.2", CSRs: reqs}
	other := strings.Repeat("0", 64)
	if _, err := NewClient(a.addr, other, nil).Join(ctx, req); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("join with another CA's hash: %v", err)
	}
	if rec, _ := a.record(t, tok.ID); len(rec.Reservations) != 0 {
		t.Fatal("the agent acted on a request sent to it under a wrong pin")
	}
	bad := req
	bad.Token = tok.ID + "." + strings.Repeat("x", 32)
	for i := range 3 {
		_, err := NewClient(a.addr, a.pin, nil).Join(ctx, bad)
		refusal(t, err, KindToken, 401)
		_ = i
	}
	// The limit holds for a right token too, from that address.
	_, err := NewClient(a.addr, a.pin, nil).Join(ctx, req)
	refusal(t, err, KindLimited, 429)
}
