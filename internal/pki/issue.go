// Package pki issues and stores the certificates declared in Table.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"k8s.io/client-go/util/keyutil"
)

// clockSkew backdates NotBefore so a peer whose clock is a little behind
// still accepts a certificate issued a moment ago.
const clockSkew = 5 * time.Minute

// KeyPair is a certificate and its private key. Cert is nil for KeyOnly specs.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Inputs are the host facts a certificate's subject and SANs depend on.
type Inputs struct {
	NodeName string
	HostIPs  []net.IP
	Template *Template // the parsed csr.conf.template, for TemplateSANs
}

// NewKey makes a P-256 key from crypto/rand.
func NewKey() (crypto.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// Subject is the spec's distinguished name for this node.
func (s Spec) Subject(in Inputs) pkix.Name {
	return pkix.Name{
		CommonName:   strings.ReplaceAll(s.CommonName, NodeNameToken, in.NodeName),
		Organization: s.Organization,
	}
}

// AltNames is the spec's subjectAltNames for this node.
func (s Spec) AltNames(in Inputs) (AltNames, error) {
	var an AltNames
	switch s.SANs {
	case TemplateSANs:
		if in.Template == nil {
			return an, fmt.Errorf("%s: no csr.conf.template given", s.Name)
		}
		an.DNS = append(an.DNS, in.Template.AltNames.DNS...)
		an.IPs = append(an.IPs, in.Template.AltNames.IPs...)
		if in.Template.HasPlaceholder {
			an.IPs = append(an.IPs, in.HostIPs...)
		}
		// Always: the kubeconfigs kubeseed writes use 127.0.0.1, and the
		// template's DNS.<n> numbering stays MicroK8s's (DNS.6 is free).
		an.DNS = append(an.DNS, "localhost")
		an.IPs = append(an.IPs, net.IPv4(127, 0, 0, 1))
	case HostSANs:
		an.DNS = []string{"localhost"}
		if in.NodeName != "" {
			an.DNS = append(an.DNS, in.NodeName)
		}
		an.IPs = append([]net.IP{net.IPv4(127, 0, 0, 1)}, in.HostIPs...)
	case LoopbackSANs:
		an.DNS = []string{"localhost"}
		an.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	an.DNS = append(an.DNS, s.ExtraDNS...)
	return an.dedup(), nil
}

func (a AltNames) dedup() AltNames {
	var out AltNames
	seen := map[string]bool{}
	for _, d := range a.DNS {
		if !seen["dns:"+d] {
			seen["dns:"+d] = true
			out.DNS = append(out.DNS, d)
		}
	}
	for _, ip := range a.IPs {
		k := "ip:" + ip.String()
		if !seen[k] {
			seen[k] = true
			out.IPs = append(out.IPs, ip)
		}
	}
	return out
}

// Issue creates a new key and a certificate for spec, signed by ca (nil for
// a CA spec, which is self-signed).
func Issue(spec Spec, in Inputs, ca *KeyPair, now time.Time) (*KeyPair, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	if spec.KeyOnly {
		return &KeyPair{Key: key}, nil
	}
	return IssueWithKey(spec, in, ca, key, now)
}

// IssueWithKey is Issue with an existing key, so a refresh can keep it.
func IssueWithKey(spec Spec, in Inputs, ca *KeyPair, key crypto.Signer, now time.Time) (*KeyPair, error) {
	cert, err := sign(spec, in, ca, key.Public(), key, now)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// SignPublicKey issues spec's certificate for a key whose private half
// stays with its owner, such as a joining node's (from its CSR). The
// subject and SANs come from spec and in, never from the requester.
func SignPublicKey(spec Spec, in Inputs, ca *KeyPair, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	if spec.IsCA() {
		return nil, fmt.Errorf("%s is a CA: it is never signed for a remote key", spec.Name)
	}
	return sign(spec, in, ca, pub, nil, now)
}

// sign makes spec's certificate for pub: self-signed by self for a CA,
// else signed by ca.
func sign(spec Spec, in Inputs, ca *KeyPair, pub crypto.PublicKey, self crypto.Signer, now time.Time) (*x509.Certificate, error) {
	if spec.KeyOnly {
		return nil, fmt.Errorf("%s is a bare key, not a certificate", spec.Name)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.Name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      spec.Subject(in),
		NotBefore:    now.Add(-clockSkew).UTC(),
		NotAfter:     now.Add(spec.Lifetime).UTC(),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  spec.Usages,
	}
	an, err := spec.AltNames(in)
	if err != nil {
		return nil, err
	}
	tmpl.DNSNames, tmpl.IPAddresses = an.DNS, an.IPs

	parent, signer := tmpl, self
	if spec.IsCA() {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		ski, err := subjectKeyID(pub)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Name, err)
		}
		tmpl.SubjectKeyId = ski
	} else {
		if ca == nil || ca.Cert == nil {
			return nil, fmt.Errorf("%s: signing CA %q not loaded", spec.Name, spec.CA)
		}
		parent, signer = ca.Cert, ca.Key
		// A leaf must not outlive its CA.
		if tmpl.NotAfter.After(ca.Cert.NotAfter) {
			tmpl.NotAfter = ca.Cert.NotAfter
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("%s: sign: %w", spec.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.Name, err)
	}
	return cert, nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return serial, nil
}

// Resign issues c again under ca for pub: same subject, usages, SANs and
// lifetime, valid from now. Passing c.PublicKey keeps the key (no private
// key is needed). It re-signs client certificates kubeseed did not issue
// itself, such as a user's kubeconfig.
func Resign(c *x509.Certificate, ca *KeyPair, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               c.Subject,
		NotBefore:             now.Add(-clockSkew).UTC(),
		KeyUsage:              c.KeyUsage,
		ExtKeyUsage:           c.ExtKeyUsage,
		UnknownExtKeyUsage:    c.UnknownExtKeyUsage,
		DNSNames:              c.DNSNames,
		IPAddresses:           c.IPAddresses,
		EmailAddresses:        c.EmailAddresses,
		URIs:                  c.URIs,
		BasicConstraintsValid: c.BasicConstraintsValid,
	}
	tmpl.NotAfter = tmpl.NotBefore.Add(c.NotAfter.Sub(c.NotBefore))
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("re-sign %q: %w", c.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(der) // RFC 5280 method 1; an identifier, not a security property
	return sum[:], nil
}

// Verify checks that kp's key matches its certificate and, for a leaf, that
// the certificate chains to ca with the spec's usages.
func Verify(spec Spec, kp *KeyPair, ca *KeyPair) error {
	if spec.KeyOnly {
		return nil
	}
	if !publicKeysEqual(kp.Cert.PublicKey, kp.Key.Public()) {
		return fmt.Errorf("%s.key does not match %s.crt", spec.Name, spec.Name)
	}
	pool := x509.NewCertPool()
	usages := spec.Usages
	if spec.IsCA() {
		pool.AddCert(kp.Cert)
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	} else {
		if ca == nil {
			return fmt.Errorf("%s: CA %s not loaded", spec.Name, spec.CA)
		}
		pool.AddCert(ca.Cert)
	}
	// Verify at NotBefore so an expired certificate is reported by status,
	// not treated as a broken chain.
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: usages, CurrentTime: kp.Cert.NotBefore.Add(clockSkew)}); err != nil {
		return fmt.Errorf("%s.crt is not signed by %s.crt: %w", spec.Name, spec.CA, err)
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// EncodeCert is the PEM form of a certificate.
func EncodeCert(c *x509.Certificate) []byte {
	var b bytes.Buffer
	_ = pemEncode(&b, "CERTIFICATE", c.Raw)
	return b.Bytes()
}

// EncodeKey is the PEM form of a private key.
func EncodeKey(k crypto.Signer) ([]byte, error) {
	return keyutil.MarshalPrivateKeyToPEM(k)
}

// ParseKey reads a PEM private key.
func ParseKey(data []byte) (crypto.Signer, error) {
	k, err := keyutil.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("key cannot sign")
	}
	return s, nil
}
