package jointoken

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

const addressForm = "<host>:<port>/<id>.<secret>/<ca-hash>"

// JoinAddress is what add-node prints and join takes:
// "<host>:<port>/<id>.<secret>/<cahash>".
type JoinAddress struct {
	Addr   string // host:port, IPv6 in brackets
	Token  Token
	CAHash string // 64 lowercase hex, see CAHash
}

// ParseJoinAddress reads a join address. Addr and CAHash come back in
// canonical form, so String re-parses to the same value.
func ParseJoinAddress(s string) (JoinAddress, error) {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return JoinAddress{}, fmt.Errorf("join address has %d parts separated by \"/\", want 3: %s", len(parts), addressForm)
	}
	addr, err := parseHostPort(parts[0])
	if err != nil {
		return JoinAddress{}, fmt.Errorf("join address: %w: want %s", err, addressForm)
	}
	tok, err := Parse(parts[1])
	if err != nil {
		return JoinAddress{}, fmt.Errorf("join address: %w", err)
	}
	hash, err := ParseCAHash(parts[2])
	if err != nil {
		return JoinAddress{}, fmt.Errorf("join address: %w: want %s", err, addressForm)
	}
	return JoinAddress{Addr: addr, Token: tok, CAHash: hash}, nil
}

// String is the line add-node prints; it holds the secret.
func (j JoinAddress) String() string {
	return j.Addr + "/" + j.Token.String() + "/" + j.CAHash
}

// LogValue keeps the secret out of slog output.
func (j JoinAddress) LogValue() slog.Value {
	return slog.StringValue(j.Addr + "/" + j.Token.ID + "/" + j.CAHash)
}

// MarshalLog keeps the secret out of logr/klog structured output.
func (j JoinAddress) MarshalLog() any { return j.Addr + "/" + j.Token.ID + "/" + j.CAHash }

// parseHostPort checks host:port and returns it canonical: an IP in its
// shortest form (IPv6 in brackets), the port without leading zeros.
func parseHostPort(s string) (string, error) {
	if _, err := Parse(s); err == nil {
		return "", errors.New("first part is a join token, not host:port: the parts are out of order")
	}
	// Quote the address only if it cannot hold a secret typed in the
	// wrong place.
	q := strconv.Quote
	if hasSecretRun(s) {
		q = func(string) string { return "(not shown: it may hold a secret)" }
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return "", fmt.Errorf("address %s: an IPv6 address needs brackets, as in [fd00::1]:25000", q(s))
		}
		return "", fmt.Errorf("address %s is not host:port", q(s))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strings.HasPrefix(port, "+") {
		return "", fmt.Errorf("address %s: port %s is not a number from 1 to 65535", q(s), q(port))
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	} else if !validHostname(host) {
		return "", fmt.Errorf("address %s: host %s is neither an IP address nor a DNS name", q(s), q(host))
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// hasSecretRun reports a run of 16 or more characters a secret is made of.
func hasSecretRun(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			run = 0
			continue
		}
		if run++; run >= 16 {
			return true
		}
	}
	return false
}

// validHostname is RFC 1123: dot-separated labels of letters, digits and
// inner hyphens, 63 characters each, 253 in all.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// ParseCAHash accepts 64 hex digits in either case and returns them in
// lower case.
func ParseCAHash(s string) (string, error) {
	if len(s) != 2*sha256.Size {
		return "", fmt.Errorf("CA hash has %d characters, want 64 hex digits", len(s))
	}
	s = strings.ToLower(s)
	if _, err := hex.DecodeString(s); err != nil {
		return "", errors.New("CA hash has a character other than 0-9, a-f: want 64 hex digits")
	}
	return s, nil
}

// CAHash is the hex SHA-256 of the CA's SubjectPublicKeyInfo, kubeadm's
// discovery hash: it names the CA's key, so it survives re-signing the CA.
func CAHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// ServerCAHashes lists the CAHash of every CA certificate a server
// presented, for `join --print-ca-hash` and for error messages.
func ServerCAHashes(cs tls.ConnectionState) []string {
	var out []string
	for _, c := range cs.PeerCertificates {
		if c.IsCA {
			out = append(out, CAHash(c))
		}
	}
	return out
}

// VerifyPinned returns a tls.Config.VerifyConnection func, for use with
// InsecureSkipVerify: true, that accepts a server only if its chain holds a
// CA whose CAHash is pin and the leaf verifies under that CA alone for
// server auth. The server must send its CA after its leaf. Host names are
// not checked: the pin, not the address dialled, authenticates the
// cluster, and a joiner may reach it through an address the certificate
// does not list.
func VerifyPinned(pin string) func(tls.ConnectionState) error {
	want, pinErr := ParseCAHash(pin)
	return func(cs tls.ConnectionState) error {
		if pinErr != nil {
			return fmt.Errorf("pinned CA hash from add-node: %w", pinErr)
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server presented no certificate")
		}
		leaf := cs.PeerCertificates[0]
		for i, ca := range cs.PeerCertificates {
			if !ca.IsCA || CAHash(ca) != want {
				continue
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			inter := x509.NewCertPool()
			for j, c := range cs.PeerCertificates[1:] {
				if j+1 != i {
					inter.AddCert(c)
				}
			}
			_, err := leaf.Verify(x509.VerifyOptions{
				Roots:         roots,
				Intermediates: inter,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("server certificate %q does not verify under the CA matching the hash from add-node: %w", leaf.Subject.CommonName, err)
			}
			return nil
		}
		got := ServerCAHashes(cs)
		if len(got) == 0 {
			return fmt.Errorf("server's CA does not match the hash from add-node: the server presented no CA certificate, only %q (want CA hash %s)", leaf.Subject.CommonName, want)
		}
		return fmt.Errorf("server's CA does not match the hash from add-node: server presented CA hash %s, want %s", strings.Join(got, ", "), want)
	}
}
