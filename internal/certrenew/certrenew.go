// Package certrenew keeps a running node's certificates current: it renews
// leaf certificates before they expire and re-renders the SANs of serving
// certificates when the host's IPs change. The components re-read the files
// (see README, "Certificate lifecycle"), so nothing restarts.
package certrenew

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// Options configure the loop.
type Options struct {
	// RenewBefore: a leaf with less than this left is renewed.
	RenewBefore time.Duration
	// CheckInterval is how often expiries are checked.
	CheckInterval time.Duration
	// IPPollInterval is how often the host's IPs are read. A change is
	// acted on once two polls in a row agree, so a flapping address does
	// not re-issue certificates on every blip.
	IPPollInterval time.Duration
}

// Defaults.
const (
	DefaultCheckInterval  = time.Hour
	DefaultIPPollInterval = 5 * time.Second
)

// WithDefaults fills the options left zero.
func (o Options) WithDefaults() Options {
	if o.RenewBefore == 0 {
		o.RenewBefore = pki.DefaultRenewBefore
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.IPPollInterval == 0 {
		o.IPPollInterval = DefaultIPPollInterval
	}
	return o
}

// Validate names the bad option.
func (o Options) Validate() error {
	switch {
	case o.RenewBefore <= 0:
		return fmt.Errorf("--cert-renew-days must be at least 1")
	case o.CheckInterval < time.Second:
		return fmt.Errorf("--cert-check-interval %s is shorter than 1s", o.CheckInterval)
	case o.IPPollInterval < 100*time.Millisecond:
		return fmt.Errorf("--host-ip-poll-interval %s is shorter than 100ms", o.IPPollInterval)
	}
	return nil
}

// State is what the loop last did, written to run/cert-renewal.json for
// `kubeseed status`.
type State struct {
	PID             int       `json:"pid"`
	RenewBefore     string    `json:"renewBefore"`
	CheckInterval   string    `json:"checkInterval"`
	LastCheck       time.Time `json:"lastCheck"`
	NextCheck       time.Time `json:"nextCheck"`
	Next            string    `json:"next,omitempty"` // certificate file due next
	NextAt          time.Time `json:"nextAt,omitzero"`
	Blocked         []string  `json:"blocked,omitempty"`
	LastRenewed     []string  `json:"lastRenewed,omitempty"`
	LastRenewedAt   time.Time `json:"lastRenewedAt,omitzero"`
	LastSANUpdate   []string  `json:"lastSANUpdate,omitempty"`
	LastSANUpdateAt time.Time `json:"lastSANUpdateAt,omitzero"`
	HostIPs         []string  `json:"hostIPs,omitempty"`
	LastError       string    `json:"lastError,omitempty"`
}

// ReadState reads the state file; nil if there is none.
func ReadState(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// Save writes the state file (a worker's renewal through the cluster
// agent writes the same one).
func (s *State) Save(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, data, 0o644)
}

// Renewer is the supervised component. Its loop ends only with Stop, so
// it has no exits to report.
type Renewer struct {
	m     pki.Manager
	o     Options
	run   *supervisor.Runner
	first chan struct{}
	state State
}

// New returns the component. m.Now is its clock; m.HostIPs its IP source.
func New(m pki.Manager, o Options) *Renewer {
	return &Renewer{m: m, o: o, run: supervisor.NewRunner("cert-renewal", 0), first: make(chan struct{})}
}

func (r *Renewer) Name() string { return "cert-renewal" }

// Init checks the options.
func (r *Renewer) Init(ctx context.Context) error { return r.o.Validate() }

// Start runs the loop until Stop.
func (r *Renewer) Start(ctx context.Context) error {
	r.state = State{PID: os.Getpid(), RenewBefore: r.o.RenewBefore.String(), CheckInterval: r.o.CheckInterval.String()}
	r.run.Start(ctx, r.loop)
	return nil
}

// Ready returns once the first expiry check has run.
func (r *Renewer) Ready(ctx context.Context) error {
	select {
	case <-r.first:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop ends the loop; a renewal in progress finishes first (it is short,
// and a kill would be recovered anyway).
func (r *Renewer) Stop(ctx context.Context) error { return r.run.Stop(ctx) }

func (r *Renewer) now() time.Time {
	if r.m.Now != nil {
		return r.m.Now()
	}
	return time.Now()
}

func (r *Renewer) loop(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("cert-renewal")
	ctx = klog.NewContext(ctx, log)
	r.check(ctx)
	close(r.first)
	checks := time.NewTicker(r.o.CheckInterval)
	defer checks.Stop()
	polls := time.NewTicker(r.o.IPPollInterval)
	defer polls.Stop()
	w := ipWatch{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-checks.C:
			r.check(ctx)
		case <-polls.C:
			if r.m.HostIPs == nil {
				continue
			}
			ips, err := r.m.HostIPs()
			if err != nil {
				r.fail(ctx, "read host IPs", err)
				continue
			}
			if w.observe(ips) {
				r.syncSANs(ctx, ips)
			}
		}
	}
}

// ipWatch decides when a change of the host's IPs is real: a new set must
// be seen on two polls in a row. The first stable set after start is
// acted on too, to catch changes made while the node was stopped.
type ipWatch struct {
	applied   []net.IP
	have      bool
	candidate []net.IP
}

func (w *ipWatch) observe(ips []net.IP) bool {
	if w.have && pki.SameIPs(ips, w.applied) {
		w.candidate = nil
		return false
	}
	if w.candidate != nil && pki.SameIPs(ips, w.candidate) {
		w.applied, w.have, w.candidate = ips, true, nil
		return true
	}
	w.candidate = ips
	if w.candidate == nil {
		w.candidate = []net.IP{} // an empty set is a set
	}
	return false
}

func (r *Renewer) check(ctx context.Context) {
	log := klog.FromContext(ctx)
	rep, err := r.m.Renew(ctx, r.o.RenewBefore)
	now := r.now()
	r.state.LastCheck, r.state.NextCheck = now, now.Add(r.o.CheckInterval)
	if err != nil {
		r.fail(ctx, "renew certificates", err)
		return
	}
	r.state.LastError = ""
	if rep.Template != nil {
		log.Error(rep.Template, "csr.conf.template does not parse; server.crt was renewed with the SANs it had. Fix the file, then run `kubeseed refresh-certs --cert server.crt`")
		r.state.LastError = rep.Template.Error()
	}
	if rep.Result != nil {
		for _, name := range rep.Renewed {
			log.Info("Renewed certificate", "cert", name+".crt", "oldExpiry", rep.Old[name].NotAfter.UTC(), "newExpiry", rep.New[name].NotAfter.UTC())
		}
		log.Info("Renewed certificates without a restart; the replaced files are in the backup", "count", len(rep.Renewed), "backup", rep.Backup)
		r.state.LastRenewed, r.state.LastRenewedAt = crtNames(rep.Renewed), now
	}
	if len(rep.Blocked) > 0 {
		log.Error(nil, "Certificates cannot be renewed past their CA's expiry; refresh the CA (`kubeseed stop`, `kubeseed refresh-certs --cert ca.crt`, `kubeseed start`)", "certs", crtNames(rep.Blocked))
	}
	r.state.Next, r.state.NextAt, r.state.Blocked = "", time.Time{}, crtNames(rep.Blocked)
	if rep.Next != "" {
		r.state.Next, r.state.NextAt = rep.Next+".crt", rep.NextAt
	}
	r.save(ctx)
}

func (r *Renewer) syncSANs(ctx context.Context, ips []net.IP) {
	log := klog.FromContext(ctx)
	r.state.HostIPs = nil
	for _, ip := range ips {
		r.state.HostIPs = append(r.state.HostIPs, ip.String())
	}
	res, err := r.m.SyncSANs(ctx)
	if res != nil {
		log.Info("Host IPs changed; re-issued certificates with the new SANs, keeping their keys", "hostIPs", r.state.HostIPs, "certs", crtNames(res.Issued), "backup", res.Backup)
		r.state.LastSANUpdate, r.state.LastSANUpdateAt = crtNames(res.Issued), r.now()
	}
	if err != nil {
		r.fail(ctx, "update certificate SANs for the new host IPs (fix the file, then run `kubeseed refresh-certs --cert server.crt`)", err)
		return
	}
	r.save(ctx)
}

func (r *Renewer) fail(ctx context.Context, what string, err error) {
	msg := what + ": " + err.Error()
	if msg != r.state.LastError {
		klog.FromContext(ctx).Error(err, "Could not "+what)
	}
	r.state.LastError = msg
	r.save(ctx)
}

func (r *Renewer) save(ctx context.Context) {
	if err := r.state.Save(r.m.Layout.CertRenewalState()); err != nil {
		klog.FromContext(ctx).Error(err, "Could not record the renewal state")
	}
}

func crtNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + ".crt"
	}
	return out
}

// Describe is the one-paragraph summary `kubeseed status` prints.
func (s *State) Describe(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "certificate renewal: renews leaf certificates with less than %s left, checking every %s", days(s.RenewBefore), s.CheckInterval)
	switch {
	case s.Next == "":
		b.WriteString("; no certificate can be renewed")
	case !s.NextAt.After(s.NextCheck):
		fmt.Fprintf(&b, "; next renewal: %s at the next check, %s", s.Next, s.NextCheck.UTC().Format(time.RFC3339))
	default:
		fmt.Fprintf(&b, "; next renewal: %s on %s (in %d days)", s.Next, s.NextAt.UTC().Format("2006-01-02 15:04 MST"), int(s.NextAt.Sub(now).Hours()/24))
	}
	if !s.LastRenewedAt.IsZero() {
		fmt.Fprintf(&b, "\n  last renewed %s: %s", s.LastRenewedAt.UTC().Format(time.RFC3339), strings.Join(s.LastRenewed, ", "))
	}
	if !s.LastSANUpdateAt.IsZero() {
		fmt.Fprintf(&b, "\n  host IPs changed %s (now %s): re-issued %s", s.LastSANUpdateAt.UTC().Format(time.RFC3339), strings.Join(s.HostIPs, ", "), strings.Join(s.LastSANUpdate, ", "))
	}
	if len(s.Blocked) > 0 {
		fmt.Fprintf(&b, "\n  cannot renew %s: the CA expires first; refresh it (kubeseed stop; kubeseed refresh-certs --cert ca.crt; kubeseed start)", strings.Join(s.Blocked, ", "))
	}
	if s.LastError != "" {
		fmt.Fprintf(&b, "\n  last error: %s", s.LastError)
	}
	return b.String()
}

func days(d string) string {
	dur, err := time.ParseDuration(d)
	if err != nil {
		return d
	}
	if dur%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", dur/(24*time.Hour))
	}
	return dur.String()
}
