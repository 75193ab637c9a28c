package pki

import (
	"fmt"
	"net"
	"strings"
	"unicode/utf8"

	"github.com/kubeseed/kubeseed/internal/args"
)

// PlaceholderLine in [ alt_names ] marks where the host's detected IPs are
// added, as in MicroK8s.
const PlaceholderLine = "#MOREIPS"

// AltNames are a certificate's subjectAltNames.
type AltNames struct {
	DNS []string
	IPs []net.IP
}

// Template is what kubeseed uses from certs/csr.conf.template.
type Template struct {
	AltNames       AltNames // in file order, duplicates removed
	HasPlaceholder bool     // a "#MOREIPS" line exists inside [ alt_names ]
}

const altNamesSection = "alt_names"

const defaultTemplate = `# kubeseed renders server.crt's subjectAltNames from the [ alt_names ] section.
# Add lines such as "DNS.6 = mydomain.com" or "IP.3 = 203.0.113.7", then run
#   kubeseed refresh-certs --cert server.crt
# The #MOREIPS line marks where the host's detected IPs are added; a running
# node re-renders server.crt by itself when those change. localhost and
# 127.0.0.1 are always included.
[ req ]
distinguished_name = dn
req_extensions = req_ext

[ dn ]
CN = kube-apiserver

[ req_ext ]
subjectAltName = @alt_names

[ alt_names ]
DNS.1 = kubernetes
DNS.2 = kubernetes.default
DNS.3 = kubernetes.default.svc
DNS.4 = kubernetes.default.svc.cluster
DNS.5 = kubernetes.default.svc.cluster.local
IP.1 = 127.0.0.1
IP.2 = ${SERVICE_IP}
#MOREIPS
`

// DefaultTemplate returns the csr.conf.template kubeseed writes on first
// start. ${SERVICE_IP} is the first IP of the service CIDR.
func DefaultTemplate() []byte {
	return []byte(defaultTemplate)
}

// ParseTemplate parses an OpenSSL-style csr.conf.template, expanding ${VAR}
// in values from vars. path is used only in error messages.
func ParseTemplate(path string, data []byte, vars map[string]string) (*Template, error) {
	errAt := func(n int, format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, a...))
	}
	t := &Template{}
	section, sawAltNames := "", false
	keyLines := map[string]map[string]int{} // section -> key -> line
	seenIP := map[string]bool{}
	seenDNS := map[string]bool{}
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		if strings.IndexByte(raw, 0) >= 0 || !utf8.ValidString(raw) {
			return nil, errAt(n, "line contains a NUL byte or invalid UTF-8")
		}
		s := strings.TrimSpace(raw)
		switch {
		case s == PlaceholderLine:
			if section == altNamesSection {
				t.HasPlaceholder = true
			}
			continue
		case s == "" || s[0] == '#' || s[0] == ';':
			continue
		case s[0] == '[':
			if !strings.HasSuffix(s, "]") {
				return nil, errAt(n, "section header %q is missing \"]\"", s)
			}
			name := strings.TrimSpace(s[1 : len(s)-1])
			if name == "" {
				return nil, errAt(n, "empty section name")
			}
			if strings.ContainsAny(name, "[]") {
				return nil, errAt(n, "invalid section name %q", name)
			}
			section = name
			if section == altNamesSection {
				sawAltNames = true
			}
			continue
		}

		key, value, ok := strings.Cut(s, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" || value == "" {
			return nil, errAt(n, "expected \"key = value\", got %q", s)
		}
		if section == "" {
			return nil, errAt(n, "%q is outside any [ section ]", key)
		}
		if keyLines[section] == nil {
			keyLines[section] = map[string]int{}
		}
		if first, dup := keyLines[section][key]; dup {
			return nil, errAt(n, "duplicate key %q in [ %s ] (first on line %d)", key, section, first)
		}
		keyLines[section][key] = n
		value, err := args.Expand(value, vars)
		if err != nil {
			return nil, errAt(n, "%s: %v", key, err)
		}
		if section != altNamesSection {
			continue
		}

		kind, err := altNameKind(key)
		if err != nil {
			return nil, errAt(n, "%v", err)
		}
		switch kind {
		case "IP":
			ip := net.ParseIP(value)
			if ip == nil {
				return nil, errAt(n, "%s: %q is not an IP address", key, value)
			}
			// String() folds IPv4-mapped IPv6 into IPv4, matching net.IP.Equal.
			if k := ip.String(); !seenIP[k] {
				seenIP[k] = true
				t.AltNames.IPs = append(t.AltNames.IPs, ip)
			}
		case "DNS":
			if err := validSANDNSName(value); err != nil {
				return nil, errAt(n, "%s: %v", key, err)
			}
			if !seenDNS[value] {
				seenDNS[value] = true
				t.AltNames.DNS = append(t.AltNames.DNS, value)
			}
		}
	}
	if !sawAltNames {
		return nil, fmt.Errorf("%s: no [ %s ] section", path, altNamesSection)
	}
	return t, nil
}

// altNameKind maps "DNS.<n>"/"IP.<n>" (or lowercase) to "DNS" or "IP".
func altNameKind(key string) (string, error) {
	prefix, num, ok := strings.Cut(key, ".")
	kind := ""
	switch prefix {
	case "DNS", "dns":
		kind = "DNS"
	case "IP", "ip":
		kind = "IP"
	}
	if kind == "" || !ok || !positiveInt(num) {
		return "", fmt.Errorf("key %q in [ %s ] must be DNS.<n> or IP.<n> with n a positive integer", key, altNamesSection)
	}
	return kind, nil
}

// positiveInt accepts a decimal number > 0 without sign or leading zeros.
func positiveInt(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validSANDNSName accepts a DNS-1123 subdomain or a "*." wildcard of one.
func validSANDNSName(name string) error {
	if len(name) > 253 {
		return fmt.Errorf("DNS name is longer than 253 characters")
	}
	if net.ParseIP(name) != nil {
		return fmt.Errorf("%q is an IP address; list it as IP.<n>", name)
	}
	labels := strings.Split(strings.TrimPrefix(name, "*."), ".")
	for _, l := range labels {
		if err := validDNSLabel(l); err != nil {
			hint := ""
			if strings.Contains(name, "#") {
				hint = " (comments must be on their own line)"
			}
			return fmt.Errorf("%q is not a valid DNS name: %v%s", name, err, hint)
		}
	}
	return nil
}

func validDNSLabel(l string) error {
	if l == "" {
		return fmt.Errorf("empty label")
	}
	if len(l) > 63 {
		return fmt.Errorf("label longer than 63 characters")
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with '-'", l)
	}
	for _, c := range l {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("label %q has %q; only lowercase letters, digits and '-' are allowed", l, c)
		}
	}
	return nil
}
