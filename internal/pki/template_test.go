package pki

import (
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const templatePath = "/x/certs/csr.conf.template"

var serviceVars = map[string]string{"SERVICE_IP": "10.152.183.1"}

func TestDefaultTemplate(t *testing.T) {
	tmpl, err := ParseTemplate(templatePath, DefaultTemplate(), serviceVars)
	if err != nil {
		t.Fatalf("ParseTemplate: %v", err)
	}
	wantDNS := []string{
		"kubernetes",
		"kubernetes.default",
		"kubernetes.default.svc",
		"kubernetes.default.svc.cluster",
		"kubernetes.default.svc.cluster.local",
	}
	if !slices.Equal(tmpl.AltNames.DNS, wantDNS) {
		t.Errorf("DNS = %q, want %q", tmpl.AltNames.DNS, wantDNS)
	}
	assertIPs(t, tmpl.AltNames.IPs, "127.0.0.1", "10.152.183.1")
	if !tmpl.HasPlaceholder {
		t.Errorf("HasPlaceholder = false")
	}

	// The caller owns the returned bytes.
	b := DefaultTemplate()
	b[0] = 'X'
	if DefaultTemplate()[0] != '#' {
		t.Errorf("DefaultTemplate returned shared memory")
	}
}

func TestDefaultTemplateNeedsServiceIP(t *testing.T) {
	_, err := ParseTemplate(templatePath, DefaultTemplate(), nil)
	want := templatePath + ":24: IP.2: unknown variable ${SERVICE_IP}"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

// The spec's instruction, appended verbatim to the default template, must
// parse: MicroK8s's template ends at DNS.5, so DNS.6 is the user's.
func TestDefaultTemplateTakesTheDocumentedLine(t *testing.T) {
	data := append(DefaultTemplate(), "DNS.6 = mydomain.com\n"...)
	tmpl, err := ParseTemplate(templatePath, data, serviceVars)
	if err != nil {
		t.Fatalf("ParseTemplate: %v", err)
	}
	if !slices.Contains(tmpl.AltNames.DNS, "mydomain.com") {
		t.Errorf("DNS = %q", tmpl.AltNames.DNS)
	}
}

func assertIPs(t *testing.T, got []net.IP, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("IPs = %v, want %v", got, want)
	}
	for i, w := range want {
		if !got[i].Equal(net.ParseIP(w)) {
			t.Errorf("IPs[%d] = %v, want %s", i, got[i], w)
		}
	}
}

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		wantDNS     []string
		wantIPs     []string
		placeholder bool
	}{
		{"minimal", "[alt_names]\nDNS.1 = a\n", []string{"a"}, nil, false},
		{"empty section", "[ alt_names ]\n", nil, nil, false},
		{"no spaces", "[alt_names]\nDNS.1=a.b\nIP.1=::1\n", []string{"a.b"}, []string{"::1"}, false},
		{"lowercase keys", "[ alt_names ]\ndns.1 = a\nip.7 = 10.0.0.1\n", []string{"a"}, []string{"10.0.0.1"}, false},
		{"wildcard", "[ alt_names ]\nDNS.1 = *.apps.example.com\n", []string{"*.apps.example.com"}, nil, false},
		{"comments and crlf", "; c\r\n# c\r\n[ alt_names ]\r\n  # indented\r\nDNS.1 = a\r\n", []string{"a"}, nil, false},
		{"dedup", "[ alt_names ]\nDNS.1 = a\nDNS.2 = b\nDNS.3 = a\nIP.1 = 10.0.0.1\nIP.2 = ::ffff:10.0.0.1\nIP.3 = 2001:db8::1\nIP.4 = 2001:DB8:0::1\n",
			[]string{"a", "b"}, []string{"10.0.0.1", "2001:db8::1"}, false},
		{"placeholder", "[ alt_names ]\nDNS.1 = a\n  #MOREIPS  \n", []string{"a"}, nil, true},
		{"placeholder outside alt_names ignored", "[ req ]\n#MOREIPS\n[ alt_names ]\nDNS.1 = a\n[ other ]\n#MOREIPS\n", []string{"a"}, nil, false},
		{"same key in other sections", "[ a ]\nk = 1\n[ b ]\nk = 1\n[ alt_names ]\nDNS.1 = x\n", []string{"x"}, nil, false},
		{"vars expanded", "[ alt_names ]\nDNS.1 = ${HOST}.example.com\nIP.1 = ${SERVICE_IP}\n", []string{"node1.example.com"}, []string{"10.152.183.1"}, false},
		{"literal dollar outside alt_names", "[ req ]\nx = $HOME$\n[ alt_names ]\n", nil, nil, false},
		{"long names", "[ alt_names ]\nDNS.1 = " + strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "\n",
			[]string{strings.Repeat("a", 63) + "." + strings.Repeat("b", 63)}, nil, false},
		{"big index", "[ alt_names ]\nDNS.123456789012345678901234567890 = a\n", []string{"a"}, nil, false},
	}
	vars := map[string]string{"SERVICE_IP": "10.152.183.1", "HOST": "node1"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := ParseTemplate(templatePath, []byte(tt.in), vars)
			if err != nil {
				t.Fatalf("ParseTemplate: %v", err)
			}
			if !slices.Equal(tmpl.AltNames.DNS, tt.wantDNS) {
				t.Errorf("DNS = %q, want %q", tmpl.AltNames.DNS, tt.wantDNS)
			}
			assertIPs(t, tmpl.AltNames.IPs, tt.wantIPs...)
			if tmpl.HasPlaceholder != tt.placeholder {
				t.Errorf("HasPlaceholder = %v, want %v", tmpl.HasPlaceholder, tt.placeholder)
			}
		})
	}
}

func TestParseTemplateErrors(t *testing.T) {
	const p = templatePath
	tests := []struct {
		name string
		in   string
		want string // error prefix
	}{
		{"no alt_names", "[ req ]\nCN = x\n", p + ": no [ alt_names ] section"},
		{"empty file", "", p + ": no [ alt_names ] section"},
		{"missing bracket", "# c\n[ alt_names\n", p + `:2: section header "[ alt_names" is missing "]"`},
		{"trailing text after header", "[ alt_names ] x\n", p + `:1: section header "[ alt_names ] x" is missing "]"`},
		{"empty section name", "[  ]\n", p + ":1: empty section name"},
		{"nested brackets", "[[alt_names]]\n", p + `:1: invalid section name "[alt_names]"`},
		{"key outside section", "CN = x\n[ alt_names ]\n", p + `:1: "CN" is outside any [ section ]`},
		{"no equals", "[ alt_names ]\nDNS.1 a\n", p + `:2: expected "key = value", got "DNS.1 a"`},
		{"empty key", "[ req ]\n= x\n", p + `:2: expected "key = value", got "= x"`},
		{"empty value", "[ alt_names ]\nDNS.1 =\n", p + `:2: expected "key = value", got "DNS.1 ="`},
		{"duplicate key", "[ alt_names ]\nDNS.1 = a\n\nDNS.1 = b\n", p + `:4: duplicate key "DNS.1" in [ alt_names ] (first on line 2)`},
		{"duplicate key across repeated section", "[ req ]\nk = 1\n[ alt_names ]\n[ req ]\nk = 2\n", p + `:5: duplicate key "k" in [ req ] (first on line 2)`},
		{"unknown var", "[ alt_names ]\nIP.1 = ${NOPE}\n", p + ":2: IP.1: unknown variable ${NOPE}"},
		{"unknown var in other section", "[ dn ]\nCN = ${NOPE}\n[ alt_names ]\n", p + ":2: CN: unknown variable ${NOPE}"},
		{"unterminated var", "[ alt_names ]\nIP.1 = ${SERVICE_IP\n", p + `:2: IP.1: unterminated "${"`},
		{"bad key", "[ alt_names ]\nemail.1 = a@b.c\n", p + `:2: key "email.1" in [ alt_names ] must be DNS.<n> or IP.<n>`},
		{"mixed case key", "[ alt_names ]\nDns.1 = a\n", p + `:2: key "Dns.1" in [ alt_names ] must be`},
		{"no index", "[ alt_names ]\nDNS = a\n", p + `:2: key "DNS" in [ alt_names ] must be`},
		{"zero index", "[ alt_names ]\nDNS.0 = a\n", p + `:2: key "DNS.0" in [ alt_names ] must be`},
		{"leading zero index", "[ alt_names ]\nDNS.01 = a\n", p + `:2: key "DNS.01" in [ alt_names ] must be`},
		{"negative index", "[ alt_names ]\nIP.-1 = ::1\n", p + `:2: key "IP.-1" in [ alt_names ] must be`},
		{"signed index", "[ alt_names ]\nIP.+1 = ::1\n", p + `:2: key "IP.+1" in [ alt_names ] must be`},
		{"bad ip", "[ alt_names ]\nIP.1 = 10.0.0.256\n", p + `:2: IP.1: "10.0.0.256" is not an IP address`},
		{"ip with zone", "[ alt_names ]\nIP.1 = fe80::1%eth0\n", p + `:2: IP.1: "fe80::1%eth0" is not an IP address`},
		{"cidr", "[ alt_names ]\nIP.1 = 10.0.0.0/8\n", p + `:2: IP.1: "10.0.0.0/8" is not an IP address`},
		{"var expands to bad ip", "[ alt_names ]\nIP.2 = ${SERVICE_IP}\n", p + `:2: IP.2: "10.152.183.x" is not an IP address`},
		{"uppercase dns", "[ alt_names ]\nDNS.1 = Kubernetes\n", p + `:2: DNS.1: "Kubernetes" is not a valid DNS name`},
		{"underscore dns", "[ alt_names ]\nDNS.1 = my_host\n", p + `:2: DNS.1: "my_host" is not a valid DNS name`},
		{"trailing dot", "[ alt_names ]\nDNS.1 = a.b.\n", p + `:2: DNS.1: "a.b." is not a valid DNS name: empty label`},
		{"leading hyphen", "[ alt_names ]\nDNS.1 = -a.b\n", p + `:2: DNS.1: "-a.b" is not a valid DNS name`},
		{"trailing hyphen", "[ alt_names ]\nDNS.1 = a-.b\n", p + `:2: DNS.1: "a-.b" is not a valid DNS name`},
		{"label too long", "[ alt_names ]\nDNS.1 = " + strings.Repeat("a", 64) + "\n", p + `:2: DNS.1: "` + strings.Repeat("a", 64) + `" is not a valid DNS name: label longer than 63`},
		{"name too long", "[ alt_names ]\nDNS.1 = " + strings.Repeat("a.", 127) + "a\n", p + `:2: DNS.1: DNS name is longer than 253 characters`},
		{"bare wildcard", "[ alt_names ]\nDNS.1 = *\n", p + `:2: DNS.1: "*" is not a valid DNS name`},
		{"inner wildcard", "[ alt_names ]\nDNS.1 = a.*.com\n", p + `:2: DNS.1: "a.*.com" is not a valid DNS name`},
		{"double wildcard", "[ alt_names ]\nDNS.1 = *.*.com\n", p + `:2: DNS.1: "*.*.com" is not a valid DNS name`},
		{"ip in dns", "[ alt_names ]\nDNS.1 = 10.0.0.1\n", p + `:2: DNS.1: "10.0.0.1" is an IP address; list it as IP.<n>`},
		{"space in dns", "[ alt_names ]\nDNS.1 = a b\n", p + `:2: DNS.1: "a b" is not a valid DNS name`},
		{"inline comment", "[ alt_names ]\nDNS.1 = a # mine\n", p + `:2: DNS.1: "a # mine" is not a valid DNS name`},
		{"nul", "[ alt_names ]\nDNS.1 = a\x00\n", p + ":2: line contains a NUL byte or invalid UTF-8"},
		{"invalid utf8", "[ alt_names ]\n# \xff\n", p + ":2: line contains a NUL byte or invalid UTF-8"},
	}
	vars := map[string]string{"SERVICE_IP": "10.152.183.x"}
	lineRef := regexp.MustCompile(`^` + regexp.QuoteMeta(p) + `(:[0-9]+)?: `)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := ParseTemplate(p, []byte(tt.in), vars)
			if err == nil {
				t.Fatalf("ParseTemplate succeeded with %+v, want error %q", tmpl, tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant prefix %q", err, tt.want)
			}
			if !lineRef.MatchString(err.Error()) {
				t.Errorf("error %q does not start with PATH:LINE", err)
			}
		})
	}
}

// dnsOracle is an independent statement of the accepted DNS names.
var dnsOracle = regexp.MustCompile(`^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

func FuzzParseTemplate(f *testing.F) {
	seeds := []string{
		string(DefaultTemplate()),
		"[alt_names]\nDNS.1=a\nIP.1=::1\n#MOREIPS\n",
		"[ alt_names ]\ndns.1 = *.example.com\nip.2 = ::ffff:1.2.3.4\nIP.3 = 1.2.3.4\n",
		"; c\r\n[ req ]\r\nx = $HOME\r\n[ alt_names ]\r\nDNS.9 = ${SERVICE_IP}\r\n",
		"[ alt_names\n",
		"[ alt_names ]\nDNS.1 = a\nDNS.1 = b\n",
		"[ alt_names ]\nemail.1 = a@b.c\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), "10.152.183.1")
	}
	f.Fuzz(func(t *testing.T, data []byte, serviceIP string) {
		tmpl, err := ParseTemplate(templatePath, data, map[string]string{"SERVICE_IP": serviceIP})
		if err != nil {
			if !strings.HasPrefix(err.Error(), templatePath+":") {
				t.Fatalf("error without path: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, d := range tmpl.AltNames.DNS {
			if len(d) > 253 || !dnsOracle.MatchString(d) || net.ParseIP(d) != nil || seen[d] {
				t.Fatalf("accepted bad or duplicate DNS name %q", d)
			}
			seen[d] = true
		}
		for i, ip := range tmpl.AltNames.IPs {
			if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
				t.Fatalf("accepted malformed IP %v", []byte(ip))
			}
			for _, prev := range tmpl.AltNames.IPs[:i] {
				if prev.Equal(ip) {
					t.Fatalf("duplicate IP %v", ip)
				}
			}
		}
	})
}
