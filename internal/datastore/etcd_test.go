package datastore

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/pkg/v3/flags"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/kubeseed/kubeseed/internal/args"
)

const baseArgs = `--name=n1
--data-dir=/tmp/x
--listen-client-urls=https://127.0.0.1:12379
--advertise-client-urls=https://127.0.0.1:12379
--listen-peer-urls=https://127.0.0.1:2380
--initial-advertise-peer-urls=https://127.0.0.1:2380
--initial-cluster=n1=https://127.0.0.1:2380
--initial-cluster-state=new
`

func parse(t *testing.T, extra string) (*embed.Config, error) {
	t.Helper()
	f, err := args.Parse("args/etcd", []byte(baseArgs+extra))
	if err != nil {
		t.Fatal(err)
	}
	return ParseArgs(f, nil)
}

// TestListFlagsReachTheConfig: etcd keeps list flags in flag values that
// must be copied to the config after parsing; one that is not is silently
// ignored.
func TestListFlagsReachTheConfig(t *testing.T) {
	cases := []struct {
		line string
		got  func(*embed.Config) []string
		want []string
	}{
		{"--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
			func(c *embed.Config) []string { return c.CipherSuites },
			[]string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}},
		{"--peer-cert-allowed-cn=etcd-peer", func(c *embed.Config) []string { return c.PeerTLSInfo.AllowedCNs }, []string{"etcd-peer"}},
		{"--client-cert-allowed-hostname=a.example", func(c *embed.Config) []string { return c.ClientTLSInfo.AllowedHostnames }, []string{"a.example"}},
		{"--log-outputs=stdout", func(c *embed.Config) []string { return c.LogOutputs }, []string{"stdout"}},
		{"", func(c *embed.Config) []string { return c.LogOutputs }, []string{"stderr"}},
		{"--listen-client-http-urls=http://127.0.0.1:12380", func(c *embed.Config) []string {
			var out []string
			for _, u := range c.ListenClientHttpUrls {
				out = append(out, u.String())
			}
			return out
		}, []string{"http://127.0.0.1:12380"}},
		{"--host-whitelist=a.example", func(c *embed.Config) []string {
			var out []string
			for h := range c.HostWhitelist {
				out = append(out, h)
			}
			return out
		}, []string{"a.example"}},
	}
	for _, c := range cases {
		cfg, err := parse(t, c.line+"\n")
		if err != nil {
			t.Fatalf("%s: %v", c.line, err)
		}
		if got := c.got(cfg); !slices.Equal(got, c.want) {
			t.Errorf("%s: config has %q, want %q", c.line, got, c.want)
		}
	}
	cfg, err := parse(t, "--max-concurrent-streams=7\n")
	if err != nil || cfg.MaxConcurrentStreams != 7 {
		t.Errorf("--max-concurrent-streams: %v %d", err, cfg.MaxConcurrentStreams)
	}
}

// TestEveryListFlagIsCopied guards against an upstream flag of the kinds
// etcd copies after parsing that ParseArgs does not know.
func TestEveryListFlagIsCopied(t *testing.T) {
	copied := []string{"listen-peer-urls", "initial-advertise-peer-urls", "listen-client-urls", "listen-client-http-urls",
		"advertise-client-urls", "listen-metrics-urls", "discovery-endpoints", "cors", "host-whitelist",
		"client-cert-allowed-hostname", "peer-cert-allowed-cn", "peer-cert-allowed-hostname", "cipher-suites",
		"max-concurrent-streams", "log-outputs"}
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	embed.NewConfig().AddFlags(fs)
	fs.VisitAll(func(fl *flag.Flag) {
		kind := fmt.Sprintf("%T", fl.Value)
		switch fl.Value.(type) {
		case *flags.UniqueURLs, *flags.UniqueStringsValue, *flags.StringsValue, *flags.URLsValue:
		default:
			if !strings.HasSuffix(kind, "uint32Value") {
				return
			}
		}
		{
			if !slices.Contains(copied, fl.Name) && !strings.HasPrefix(fl.Name, "experimental-") {
				t.Errorf("--%s (%T) is kept in its flag value, and ParseArgs does not copy it to the config", fl.Name, fl.Value)
			}
		}
	})
}
