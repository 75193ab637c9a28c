package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeseed/kubeseed/internal/jointoken"
	"github.com/kubeseed/kubeseed/internal/pki"
)

// clientCert is a certificate of the table's spec name for node, signed by
// ca at issued with the given lifetime, as a TLS client presents it.
func clientCert(t *testing.T, ca *pki.KeyPair, name, node string, issued time.Time, life time.Duration) *tls.Certificate {
	t.Helper()
	spec, _ := pki.Lookup(name)
	spec.Lifetime = life
	kp, err := pki.Issue(spec, pki.Inputs{NodeName: node}, ca, issued)
	if err != nil {
		t.Fatal(err)
	}
	c := tlsCert(t, pki.EncodeCert(kp.Cert), kp.Key)
	return &c
}

func newCA(t *testing.T) *pki.KeyPair {
	t.Helper()
	spec, _ := pki.Lookup("ca")
	ca, err := pki.Issue(spec, pki.Inputs{}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func addNode(t *testing.T, a *testAgent, name, internalIP string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if internalIP != "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: internalIP}}
	}
	if _, err := a.kube.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestRenew: a worker renews with its current kubelet client certificate;
// the agent signs its new keys with the subjects, SANs and lifetime it set
// at join, and refuses anyone else.
func TestRenew(t *testing.T) {
	const life = 10 * time.Minute
	a := startAgentWith(t, func(c *Config) { c.WorkerCertLifetime = life; c.MaxFailures = 100 })
	addNode(t, a, "w1", "127.0.0.1")
	addNode(t, a, "w2", "") // a Node whose kubelet has not reported addresses yet
	addNode(t, a, "moved", "192.0.2.7")
	now := time.Now()
	kubelet := func(node string) *tls.Certificate {
		return clientCert(t, a.ca, KubeletClientCSR, node, now, time.Hour)
	}
	_, reqs := csrs(t)
	oneShort := map[string][]byte{KubeletClientCSR: reqs[KubeletClientCSR], ProxyCSR: reqs[ProxyCSR]}
	cases := []struct {
		name string
		cert *tls.Certificate // presented; nil for none
		csrs map[string][]byte
		// node is whose certificates a renewal signs; "" means refused:
		// with kind and status, or in the TLS handshake if kind is "".
		node   string
		kind   string
		status int
	}{
		{name: "valid", cert: kubelet("w1"), node: "w1"},
		{name: "a Node without addresses yet", cert: kubelet("w2"), node: "w2"},
		{name: "no client certificate", kind: KindRequest, status: 401},
		{name: "kube-proxy's certificate", cert: clientCert(t, a.ca, ProxyCSR, "w1", now, time.Hour), kind: KindRequest, status: 401},
		{name: "admin's certificate", cert: clientCert(t, a.ca, "admin", "w1", now, time.Hour), kind: KindRequest, status: 401},
		{name: "expired", cert: clientCert(t, a.ca, KubeletClientCSR, "w1", now.Add(-2*time.Hour), time.Hour)},
		{name: "from another CA", cert: clientCert(t, newCA(t), KubeletClientCSR, "w1", now, time.Hour)},
		{name: "removed node", cert: kubelet("gone"), kind: KindPreflight, status: 403},
		{name: "node seen from another address", cert: kubelet("moved"), kind: KindPreflight, status: 403},
		{name: "a CSR missing", cert: kubelet("w1"), csrs: oneShort, kind: KindRequest, status: 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys, fresh := csrs(t)
			if c.csrs != nil {
				fresh = c.csrs
			}
			resp, err := NewClient(a.addr, a.pin, c.cert).Renew(context.Background(), RenewRequest{CSRs: fresh})
			var refused *RefusedError
			switch {
			case c.node != "":
				if err != nil {
					t.Fatal(err)
				}
				assertWorkerCerts(t, a.ca, resp.Certs, keys, c.node, life)
			case c.kind != "":
				refusal(t, err, c.kind, c.status)
			case err == nil || errors.As(err, &refused):
				t.Fatalf("got %v, want the TLS handshake to refuse the certificate", err)
			}
		})
	}
}

// TestRenewalFailuresAreLimited: refused renewals from an address are
// limited, apart from joins.
func TestRenewalFailuresAreLimited(t *testing.T) {
	a := startAgent(t) // 3 failures a minute
	ctx := context.Background()
	addNode(t, a, "w1", "127.0.0.1")
	_, reqs := csrs(t)
	gone := clientCert(t, a.ca, KubeletClientCSR, "gone", time.Now(), time.Hour)
	for range 3 {
		_, err := NewClient(a.addr, a.pin, gone).Renew(ctx, RenewRequest{CSRs: reqs})
		refusal(t, err, KindPreflight, 403)
	}
	good := clientCert(t, a.ca, KubeletClientCSR, "w1", time.Now(), time.Hour)
	_, err := NewClient(a.addr, a.pin, good).Renew(ctx, RenewRequest{CSRs: reqs})
	refusal(t, err, KindLimited, 429)
	// The join below comes from w1's address too, which a join may not.
	if err := a.kube.CoreV1().Nodes().Delete(ctx, "w1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tok := a.token(t)
	if _, err := NewClient(a.addr, a.pin, nil).Join(ctx, JoinRequest{Token: tok.String(), Role: jointoken.Worker, NodeName: "w3", Version: "v1.37.2", CSRs: reqs}); err != nil {
		t.Errorf("a join from an address whose renewals were limited: %v", err)
	}
}
