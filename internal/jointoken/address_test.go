package jointoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

const (
	testSecret = "0123456789abcdefghijklmnopqrstuv"
	testHash   = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

func TestParseJoinAddress(t *testing.T) {
	tok := "k7x2pq." + testSecret
	cases := []struct {
		in       string
		wantAddr string
	}{
		{"198.18.0.11:25000/" + tok + "/" + testHash, "198.18.0.11:25000"},
		{"[fd00::1]:25000/" + tok + "/" + testHash, "[fd00::1]:25000"},
		{"[FD00:0:0::1]:25000/" + tok + "/" + testHash, "[fd00::1]:25000"},
		{"[fe80::1%eth0]:1/" + tok + "/" + testHash, "[fe80::1%eth0]:1"},
		{"cp-1.example.com:65535/" + tok + "/" + testHash, "cp-1.example.com:65535"},
		{"localhost:025000/" + tok + "/" + testHash, "localhost:25000"},
		{"198.18.0.11:25000/" + tok + "/" + strings.ToUpper(testHash), "198.18.0.11:25000"},
		{" 198.18.0.11:25000/" + tok + "/" + testHash + "\n", "198.18.0.11:25000"},
	}
	for _, c := range cases {
		j, err := ParseJoinAddress(c.in)
		if err != nil {
			t.Errorf("ParseJoinAddress(%q): %v", c.in, err)
			continue
		}
		want := JoinAddress{Addr: c.wantAddr, Token: Token{ID: "k7x2pq", Secret: testSecret}, CAHash: testHash}
		if j != want {
			t.Errorf("ParseJoinAddress(%q) = %+v, want %+v", c.in, j, want)
		}
		if again, err := ParseJoinAddress(j.String()); err != nil || again != j {
			t.Errorf("ParseJoinAddress(%q) = %+v, %v: String does not round trip", j.String(), again, err)
		}
	}
}

func TestParseJoinAddressBad(t *testing.T) {
	tok := "k7x2pq." + testSecret
	cases := []struct {
		in, want string
	}{
		{"", "1 parts"},
		{"198.18.0.11:25000/" + tok, "2 parts"},
		{"198.18.0.11:25000/" + tok + "/" + testHash + "/", "4 parts"},
		{"198.18.0.11/" + tok + "/" + testHash, `address "198.18.0.11" is not host:port`},
		{":25000/" + tok + "/" + testHash, `host "" is neither`},
		{"198.18.0.11:0/" + tok + "/" + testHash, `port "0" is not a number from 1 to 65535`},
		{"198.18.0.11:65536/" + tok + "/" + testHash, `port "65536"`},
		{"198.18.0.11:-1/" + tok + "/" + testHash, `port "-1"`},
		{"198.18.0.11:+80/" + tok + "/" + testHash, `port "+80"`},
		{"198.18.0.11:http/" + tok + "/" + testHash, `port "http"`},
		{"198.18.0.11:/" + tok + "/" + testHash, `port ""`},
		{"fd00::1:25000/" + tok + "/" + testHash, "needs brackets"},
		{"[fd00::1]/" + tok + "/" + testHash, "is not host:port"},
		{"bad_host:25000/" + tok + "/" + testHash, `host "bad_host" is neither`},
		{"-a.example:25000/" + tok + "/" + testHash, "is neither"},
		{"a..example:25000/" + tok + "/" + testHash, "is neither"},
		{tok + "/198.18.0.11:25000/" + testHash, "first part is a join token"},
		{"k7x2pq." + testSecret[:31] + "/198.18.0.11:25000/" + testHash, "address (not shown: it may hold a secret) is not host:port"},
		{"198.18.0.11:" + testSecret + "/" + tok + "/" + testHash, "port (not shown"},
		{"198.18.0.11:25000/k7x2pq/" + testHash, `join token has no "."`},
		{"198.18.0.11:25000/k7x2pq." + testSecret[:31] + "/" + testHash, "secret has 31 characters"},
		{"198.18.0.11:25000/" + tok + "/" + testHash[:63], "CA hash has 63 characters, want 64 hex digits"},
		{"198.18.0.11:25000/" + tok + "/" + testHash + "0", "CA hash has 65 characters"},
		{"198.18.0.11:25000/" + tok + "/" + testHash[:63] + "g", "CA hash has a character other than 0-9, a-f"},
		{"198.18.0.11:25000/" + tok + "/sha256:" + testHash[:57], "CA hash has a character"},
		{"198.18.0.11:25000/" + tok + "/", "CA hash has 0 characters"},
	}
	for _, c := range cases {
		_, err := ParseJoinAddress(c.in)
		if err == nil {
			t.Errorf("ParseJoinAddress(%q): no error", c.in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) {
			t.Errorf("ParseJoinAddress(%q) = %q, want it to say %q", c.in, msg, c.want)
		}
		if !strings.Contains(msg, "<id>.<secret>") {
			t.Errorf("ParseJoinAddress(%q) = %q, want the expected form", c.in, msg)
		}
		if strings.Contains(msg, testSecret[:16]) {
			t.Errorf("ParseJoinAddress(%q) = %q repeats the secret", c.in, msg)
		}
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCert signs tmpl with parent/parentKey, or self-signs when parent is nil.
func newCert(t *testing.T, tmpl *x509.Certificate, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	tmpl.NotAfter = tmpl.NotBefore.Add(48 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
}

func leafTemplate(cn string, eku x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{eku},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
}

func TestCAHashSurvivesResigning(t *testing.T) {
	key := newKey(t)
	ca1 := newCert(t, caTemplate("kubeseed-ca"), key, nil, nil)
	tmpl := caTemplate("kubeseed-ca")
	tmpl.NotBefore = time.Now().Add(-30 * time.Minute)
	ca2 := newCert(t, tmpl, key, nil, nil)
	other := newCert(t, caTemplate("kubeseed-ca"), newKey(t), nil, nil)

	if string(ca1.Raw) == string(ca2.Raw) {
		t.Fatal("the two CA certificates are identical; the test needs two signings")
	}
	h1, h2 := CAHash(ca1), CAHash(ca2)
	if h1 != h2 {
		t.Errorf("CAHash changed on re-signing with the same key: %s, %s", h1, h2)
	}
	if h := CAHash(other); h == h1 {
		t.Errorf("CAHash of a CA with another key equals %s", h)
	}
	if got, err := ParseCAHash(h1); err != nil || got != h1 {
		t.Errorf("CAHash %q is not 64 lowercase hex: %v", h1, err)
	}
}

// handshake runs a TLS handshake over loopback TCP (a net.Pipe has no
// buffer, so a client alert sent while the server writes its flight would
// deadlock): the server presents chain, the client verifies with verify
// only, then sends "token".
func handshake(t *testing.T, chain []*x509.Certificate, key crypto.Signer, verify func(tls.ConnectionState) error) error {
	t.Helper()
	var der [][]byte
	for _, c := range chain {
		der = append(der, c.Raw)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		srv := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{{Certificate: der, PrivateKey: key}}})
		defer srv.Close()
		b, _ := io.ReadAll(srv)
		got <- b
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc.SetDeadline(time.Now().Add(10 * time.Second))
	cli := tls.Client(cc, &tls.Config{InsecureSkipVerify: true, VerifyConnection: verify})
	err = cli.Handshake()
	if err == nil {
		_, err = cli.Write([]byte("token"))
	}
	cli.Close()
	if b := <-got; (err == nil) != (string(b) == "token") {
		t.Errorf("handshake error %v, yet the server read %q", err, b)
	}
	return err
}

func TestVerifyPinned(t *testing.T) {
	caKey, otherKey, interKey, leafKey := newKey(t), newKey(t), newKey(t), newKey(t)
	ca := newCert(t, caTemplate("kubeseed-ca"), caKey, nil, nil)
	resigned := newCert(t, caTemplate("kubeseed-ca"), caKey, nil, nil)
	other := newCert(t, caTemplate("other-ca"), otherKey, nil, nil)
	inter := newCert(t, caTemplate("kubeseed-intermediate"), interKey, ca, caKey)
	leaf := newCert(t, leafTemplate("cluster-agent", x509.ExtKeyUsageServerAuth), leafKey, ca, caKey)
	otherLeaf := newCert(t, leafTemplate("cluster-agent", x509.ExtKeyUsageServerAuth), leafKey, other, otherKey)
	interLeaf := newCert(t, leafTemplate("cluster-agent", x509.ExtKeyUsageServerAuth), leafKey, inter, interKey)
	clientLeaf := newCert(t, leafTemplate("cluster-agent", x509.ExtKeyUsageClientAuth), leafKey, ca, caKey)
	expiredTmpl := leafTemplate("cluster-agent", x509.ExtKeyUsageServerAuth)
	expiredTmpl.NotBefore = time.Now().Add(-72 * time.Hour)
	expiredLeaf := newCert(t, expiredTmpl, leafKey, ca, caKey)

	cases := []struct {
		name  string
		chain []*x509.Certificate
		pin   string
		want  string // "" for success
	}{
		{"right CA", []*x509.Certificate{leaf, ca}, CAHash(ca), ""},
		{"pin in upper case", []*x509.Certificate{leaf, ca}, strings.ToUpper(CAHash(ca)), ""},
		{"CA re-signed with the same key", []*x509.Certificate{leaf, resigned}, CAHash(ca), ""},
		{"root pinned, through an intermediate", []*x509.Certificate{interLeaf, inter, ca}, CAHash(ca), ""},
		{"intermediate pinned", []*x509.Certificate{interLeaf, inter, ca}, CAHash(inter), ""},
		{"other CA", []*x509.Certificate{otherLeaf, other}, CAHash(ca),
			"server's CA does not match the hash from add-node: server presented CA hash " + CAHash(other)},
		{"leaf not signed by the pinned CA", []*x509.Certificate{otherLeaf, ca}, CAHash(ca), "does not verify under the CA"},
		{"leaf without server auth", []*x509.Certificate{clientLeaf, ca}, CAHash(ca), "does not verify under the CA"},
		{"expired leaf", []*x509.Certificate{expiredLeaf, ca}, CAHash(ca), "does not verify under the CA"},
		{"no CA in the chain", []*x509.Certificate{leaf}, CAHash(ca), "presented no CA certificate"},
		{"leaf's own hash pinned", []*x509.Certificate{leaf, ca}, CAHash(leaf), "presented CA hash " + CAHash(ca)},
		{"bad pin", []*x509.Certificate{leaf, ca}, CAHash(ca)[:10], "pinned CA hash from add-node: CA hash has 10 characters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := handshake(t, c.chain, leafKey, VerifyPinned(c.pin))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("accepted, want %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q, want it to say %q", err, c.want)
			}
		})
	}
}

// TestVerifyPinnedWithoutHandshake covers a chain a TLS stack would not
// deliver: no certificates at all.
func TestVerifyPinnedWithoutHandshake(t *testing.T) {
	err := VerifyPinned(testHash)(tls.ConnectionState{})
	if err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("got %v", err)
	}
}
