// Package apiproxy is a worker node's local API load balancer: kubelet and
// kube-proxy talk to 127.0.0.1:16443 and each connection is passed, as raw
// TCP, to one healthy kube-apiserver. TLS stays end to end; the proxy only
// chooses the server.
//
// Lessons from k3s's agent load balancer (k3s#7193, #11349, #11334): close
// connections to servers that went bad or were removed, keep the join
// addresses as a last resort so a stale list cannot strand the node, and
// never refuse to try a server just because its health check failed.
package apiproxy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// Defaults for the zero values of Config.
const (
	DefaultListen         = "127.0.0.1:16443"
	DefaultHealthInterval = 5 * time.Second
	DefaultDialTimeout    = 3 * time.Second
)

// maxServers bounds the list: a cluster has a handful of control planes, and
// each entry costs a health check every interval.
const maxServers = 128

// Config configures a Proxy.
type Config struct {
	Listen         string         // "127.0.0.1:16443" (DefaultListen when empty)
	Servers        []string       // initial "host:port" list (from the join answer); kept as last-resort fallback forever
	CA             *x509.CertPool // the cluster CA, to verify apiservers in health checks
	StateFile      string         // where the current server list is persisted; read at start if present
	HealthInterval time.Duration  // DefaultHealthInterval when zero
	DialTimeout    time.Duration  // DefaultDialTimeout when zero
}

// ServerStatus is one server as `kubeseed status` shows it.
type ServerStatus struct {
	Address     string
	Healthy     bool      // its last health check passed
	LastError   string    // of the last failed check or dial since it was last healthy; empty otherwise
	LastCheck   time.Time // zero before the first check
	ActiveConns int
	Current     bool // new connections go here first
	Fallback    bool // from Config.Servers: tried even when unlisted
	Listed      bool // in the list given to SetServers (or read from StateFile)
}

// server is one apiserver address. It lives in Proxy.servers while it is
// listed or a fallback; a removed one is dropped, so a late health result or
// dial for it is recognised by pointer and ignored.
type server struct {
	addr     string
	fallback bool
	listed   bool

	checked    bool // at least one health check finished
	healthy    bool // the last health check passed
	dialFailed bool // a dial failed since the last passed check: skip it as current
	lastErr    error
	lastCheck  time.Time

	conns map[*proxyConn]struct{}
	stop  context.CancelFunc // ends its health loop; nil while none runs
}

// usable says whether new connections should go to s first.
func (s *server) usable() bool { return s.healthy && !s.dialFailed }

// takeConns empties s.conns and returns them, for closing outside p.mu.
func (s *server) takeConns() []*proxyConn {
	out := make([]*proxyConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	clear(s.conns)
	return out
}

// Proxy is the worker's local API load balancer.
type Proxy struct {
	cfg      Config
	fallback []string // normalised Config.Servers, in order

	saveMu sync.Mutex // serialises StateFile writes so the last one wins
	saved  []string   // the list last written to (or read from) StateFile; under saveMu

	mu      sync.Mutex
	log     klog.Logger
	servers map[string]*server
	listed  []string // the dynamic list, in order
	current string   // "" when no server is usable
	rotate  int      // where dialing starts among unusable servers
	started bool
	closing bool // Run is shutting down: no new proxied connections
	addr    net.Addr
	changed chan struct{} // closed and replaced on every state change (for Ready)
	kick    chan struct{} // tells Run's health supervisor the set changed
	done    chan struct{} // closed when Run returns
	runErr  error
}

// New validates cfg and returns a Proxy that is not yet listening. The
// server list saved in cfg.StateFile, if any, is loaded; a broken state file
// is logged and ignored, since Config.Servers always remain to fall back on.
func New(cfg Config) (*Proxy, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	var errs []error
	listen, err := normalizeAddr(cfg.Listen, true)
	if err != nil {
		errs = append(errs, fmt.Errorf("Config.Listen %q: %w", cfg.Listen, err))
	}
	cfg.Listen = listen
	if len(cfg.Servers) == 0 {
		errs = append(errs, errors.New("Config.Servers is empty: at least one apiserver host:port is needed"))
	}
	if len(cfg.Servers) > maxServers {
		errs = append(errs, fmt.Errorf("Config.Servers has %d entries, at most %d are supported", len(cfg.Servers), maxServers))
	}
	var fallback []string
	for i, s := range cfg.Servers {
		a, err := normalizeAddr(s, false)
		if err == nil && a == listen {
			err = errors.New("is the proxy's own Listen address")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("Config.Servers[%d] %q: %w", i, s, err))
			continue
		}
		if !slices.Contains(fallback, a) {
			fallback = append(fallback, a)
		}
	}
	if cfg.CA == nil {
		errs = append(errs, errors.New("Config.CA is nil: the cluster CA is needed to verify apiservers"))
	}
	if cfg.HealthInterval < 0 {
		errs = append(errs, fmt.Errorf("Config.HealthInterval %v is negative", cfg.HealthInterval))
	}
	if cfg.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("Config.DialTimeout %v is negative", cfg.DialTimeout))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("apiproxy: invalid config: %w", errors.Join(errs...))
	}

	p := &Proxy{
		cfg:      cfg,
		fallback: fallback,
		log:      klog.Background().WithName("apiproxy"),
		servers:  make(map[string]*server),
		changed:  make(chan struct{}),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	for _, a := range fallback {
		p.servers[a] = &server{addr: a, fallback: true, conns: make(map[*proxyConn]struct{})}
	}
	if cfg.StateFile != "" {
		list, err := loadState(cfg.StateFile)
		switch {
		case err != nil:
			p.log.Error(err, "Ignoring the saved apiserver list; using the configured servers")
		case list != nil:
			p.setListedLocked(dropSelf(p.log, p.cfg.Listen, list))
			p.saved = list
		}
	}
	p.pickCurrentLocked()
	return p, nil
}

// normalizeAddr checks a "host:port" and returns it in canonical form (IP
// literals as netip prints them, host names in lower case), so the same
// server given twice is one entry. listen allows port 0 (any free port).
func normalizeAddr(addr string, listen bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (n == 0 && !listen) {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "" {
		return "", errors.New("host is empty")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() && !listen {
			return "", fmt.Errorf("host %s is the unspecified address", host)
		}
		return netip.AddrPortFrom(ip, uint16(n)).String(), nil
	}
	if !validHostname(host) {
		return "", fmt.Errorf("host %q is neither an IP address nor a DNS name", host)
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.FormatUint(n, 10)), nil
}

// validHostname accepts RFC 1123 names (an optional trailing dot included).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// cleanList normalises, de-duplicates and bounds a server list, dropping
// (and logging) the entries that are not usable.
func (p *Proxy) cleanList(servers []string) []string {
	p.mu.Lock()
	log := p.log
	p.mu.Unlock()
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		a, err := normalizeAddr(s, false)
		if err != nil {
			log.Error(err, "Ignoring an invalid apiserver address", "address", s)
			continue
		}
		if slices.Contains(out, a) {
			continue
		}
		if len(out) == maxServers {
			log.Info("Too many apiservers; ignoring the rest", "max", maxServers)
			break
		}
		out = append(out, a)
	}
	return dropSelf(log, p.cfg.Listen, out)
}

// dropSelf removes the proxy's own address: dialing it would loop forever.
func dropSelf(log klog.Logger, listen string, list []string) []string {
	return slices.DeleteFunc(list, func(a string) bool {
		if a == listen {
			log.Info("Ignoring the proxy's own address in the apiserver list", "address", a)
			return true
		}
		return false
	})
}

// SetServers replaces the dynamic server list (from the default/kubernetes
// EndpointSlice) and persists it to StateFile. Config.Servers stay as
// fallback. Connections to servers that left the list are closed so their
// clients reconnect to a listed one (k3s#7193). Invalid entries are logged
// and skipped. A list with no valid entry is ignored: an EndpointSlice is
// empty while no apiserver is ready, and forgetting every server then would
// leave only the join addresses, which may be long gone (k3s#11349).
func (p *Proxy) SetServers(servers []string) {
	list := p.cleanList(servers)
	p.mu.Lock()
	if len(list) == 0 {
		p.log.Info("Ignoring an empty apiserver list; keeping the current one", "current", p.listed, "given", len(servers))
		p.mu.Unlock()
		return
	}
	toClose := p.setListedLocked(list)
	p.pickCurrentLocked()
	p.notifyLocked()
	p.mu.Unlock()
	closeConns(toClose)
	select {
	case p.kick <- struct{}{}:
	default:
	}
	p.persist()
}

// setListedLocked makes list the dynamic list and returns the connections to
// close: those to servers no longer listed.
func (p *Proxy) setListedLocked(list []string) []*proxyConn {
	var toClose []*proxyConn
	for _, a := range p.listed {
		if slices.Contains(list, a) {
			continue
		}
		s := p.servers[a]
		s.listed = false
		conns := s.takeConns()
		toClose = append(toClose, conns...)
		if !s.fallback {
			if s.stop != nil {
				s.stop()
			}
			delete(p.servers, a)
		}
		p.log.Info("Apiserver left the list; closing its connections", "server", a, "connections", len(conns), "keptAsFallback", s.fallback)
	}
	for _, a := range list {
		s := p.servers[a]
		if s == nil {
			s = &server{addr: a, conns: make(map[*proxyConn]struct{})}
			p.servers[a] = s
		}
		s.listed = true
	}
	p.listed = list
	return toClose
}

// ordered returns every server: the listed ones in their order, then the
// fallback-only ones in Config order.
func (p *Proxy) ordered() []*server {
	out := make([]*server, 0, len(p.servers))
	for _, a := range p.listed {
		out = append(out, p.servers[a])
	}
	for _, a := range p.fallback {
		if s := p.servers[a]; !s.listed {
			out = append(out, s)
		}
	}
	return out
}

// pickCurrentLocked keeps the current server while it is usable (and listed,
// when a listed one is usable), else picks the first usable in order.
func (p *Proxy) pickCurrentLocked() {
	order := p.ordered()
	listedUsable := slices.ContainsFunc(order, func(s *server) bool { return s.listed && s.usable() })
	if cur := p.servers[p.current]; cur != nil && cur.usable() && (cur.listed || !listedUsable) {
		return
	}
	next := ""
	for _, s := range order {
		if s.usable() {
			next = s.addr
			break
		}
	}
	if next == p.current {
		return
	}
	if next == "" {
		p.log.Info("No healthy apiserver; new connections will try every server", "previous", p.current)
	} else {
		p.log.Info("Switched apiserver", "server", next, "previous", p.current)
	}
	p.current = next
}

// candidates is the dial order for a new connection: the current server,
// the other usable ones, then the rest with the fallback list first. The
// rest starts at a rotating offset so one black-holed server does not delay
// every connection by a dial timeout.
func (p *Proxy) candidates() []*server {
	p.mu.Lock()
	defer p.mu.Unlock()
	order := p.ordered()
	out := make([]*server, 0, len(order))
	if cur := p.servers[p.current]; cur != nil {
		out = append(out, cur)
	}
	for _, s := range order {
		if s.usable() && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	var rest []*server
	for _, a := range p.fallback {
		if s := p.servers[a]; !slices.Contains(out, s) {
			rest = append(rest, s)
		}
	}
	for _, s := range order {
		if !slices.Contains(out, s) && !slices.Contains(rest, s) {
			rest = append(rest, s)
		}
	}
	if len(rest) > 0 {
		k := p.rotate % len(rest)
		rest = append(rest[k:], rest[:k]...)
	}
	return append(out, rest...)
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Status reports every server, listed ones first.
func (p *Proxy) Status() []ServerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ServerStatus
	for _, s := range p.ordered() {
		st := ServerStatus{
			Address:     s.addr,
			Healthy:     s.healthy,
			LastCheck:   s.lastCheck,
			ActiveConns: len(s.conns),
			Current:     s.addr == p.current,
			Fallback:    s.fallback,
			Listed:      s.listed,
		}
		if s.lastErr != nil {
			st.LastError = s.lastErr.Error()
		}
		out = append(out, st)
	}
	return out
}

// Addr is the address the proxy listens on, nil before Run listens. With
// port 0 in Config.Listen it tells which port was chosen.
func (p *Proxy) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Ready blocks until the proxy listens and at least one server passes its
// health check, or ctx ends, or Run returns. Its error says why each server
// is not healthy.
func (p *Proxy) Ready(ctx context.Context) error {
	for {
		p.mu.Lock()
		listening := p.addr != nil
		if listening && slices.ContainsFunc(p.ordered(), func(s *server) bool { return s.healthy }) {
			p.mu.Unlock()
			return nil
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return p.notReady(ctx.Err())
		case <-p.done:
			return p.notReady(errors.New("Run returned"))
		case <-changed:
		}
	}
}

func (p *Proxy) notReady(cause error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runErr != nil {
		return fmt.Errorf("apiproxy: not ready: %w", p.runErr)
	}
	select {
	case <-p.done:
		return errors.New("apiproxy: not ready: Run has returned")
	default:
	}
	if p.addr == nil {
		return fmt.Errorf("apiproxy: not listening on %s yet: %w", p.cfg.Listen, cause)
	}
	var why []string
	for _, s := range p.ordered() {
		switch {
		case s.lastErr != nil:
			why = append(why, fmt.Sprintf("%s: %v", s.addr, s.lastErr))
		case !s.checked:
			why = append(why, s.addr+": not checked yet")
		default:
			why = append(why, s.addr+": unhealthy")
		}
	}
	return fmt.Errorf("apiproxy: no apiserver is healthy (%s): %w", strings.Join(why, "; "), cause)
}
