package dns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// ConfigFile is the addon's state under config/, in args-file syntax. A
// node without it has DNS enabled with the host's resolvers: the default,
// and what data dirs from before the addon get.
const ConfigFile = "dns"

// Config is the persisted state.
type Config struct {
	Enabled bool
	// Upstreams set with --upstream; nil means the host's resolvers, read
	// at every start.
	Upstreams []string
}

// DefaultConfig is a new node's.
func DefaultConfig() Config { return Config{Enabled: true} }

// LoadConfig reads config/dns; a missing file is DefaultConfig.
func LoadConfig(l datadir.Layout) (Config, error) {
	path := l.Config(ConfigFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultConfig(), nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	return ParseConfig(path, data)
}

// ParseConfig parses config/dns.
func ParseConfig(path string, data []byte) (Config, error) {
	f, err := args.Parse(path, data)
	if err != nil {
		return Config{}, err
	}
	c := DefaultConfig()
	for _, a := range f.Args() {
		switch a.Name {
		case "enabled":
			v := "true"
			if a.HasValue {
				v = a.Value
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Config{}, fmt.Errorf("%s:%d: --enabled=%q is not true or false", path, a.Line, a.Value)
			}
			c.Enabled = b
		case "upstream":
			if strings.TrimSpace(a.Value) == "" || a.Value == "auto" {
				c.Upstreams = nil
				continue
			}
			ups, err := ParseUpstreams("--upstream", a.Value)
			if err != nil {
				return Config{}, fmt.Errorf("%s:%d: %w", path, a.Line, err)
			}
			c.Upstreams = ups
		default:
			return Config{}, fmt.Errorf("%s:%d: unknown setting --%s (known: --enabled, --upstream)", path, a.Line, a.Name)
		}
	}
	return c, nil
}

// Bytes renders the file.
func (c Config) Bytes() []byte {
	up := "auto"
	if len(c.Upstreams) > 0 {
		up = strings.Join(c.Upstreams, ",")
	}
	return []byte(fmt.Sprintf(`# The DNS addon (CoreDNS), applied at every start while enabled.
# Changed by `+"`kubeseed enable dns [--upstream IP,...]`"+` and `+"`kubeseed disable dns`"+`.
# --upstream=auto forwards to the host's /etc/resolv.conf nameservers
# (loopback ones excluded), or to %s when none is left.
--enabled=%t
--upstream=%s
`, strings.Join(FallbackUpstreams, ","), c.Enabled, up))
}

// SaveConfig writes config/dns.
func SaveConfig(l datadir.Layout, c Config) error {
	return fsutil.WriteFileAtomic(l.Config(ConfigFile), c.Bytes(), 0o644)
}

// ResolvedUpstreams are the forwarders to render: the configured ones, or the
// host's; note, when not empty, says why a fallback was chosen.
func (c Config) ResolvedUpstreams(resolvConf string) (ups []string, note string) {
	if len(c.Upstreams) > 0 {
		return c.Upstreams, ""
	}
	return ReadHostUpstreams(resolvConf)
}
