package agent

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/transport"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/certrenew"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// WorkerRenewalComponent is the worker's renewal component.
const WorkerRenewalComponent = "worker-cert-renewal"

// workerCertRefresh is how often the kubelet and kube-proxy look at their
// client certificate files on a worker. client-go takes renewed files for
// each new connection, and closes the connections made with the old
// certificate when its periodic check sees the change: every 5 minutes
// upstream (transport.CertCallbackRefreshDuration). A worker's old
// certificate may have only minutes left when it is renewed (a short
// --worker-cert-lifetime keeps a third of its validity, at least 2m40s),
// and the apiserver checks a client certificate's expiry on every request,
// also on an old connection.
const workerCertRefresh = time.Minute

// retryAfterFailure bounds the wait after a failed renewal.
const retryAfterFailure = time.Minute

// WorkerRenewer keeps a worker's certificates current: a worker holds no
// CA key, so the cluster agent signs fresh keys made here, authenticated by
// the node's current kubelet client certificate. Like the control plane's
// renewal, it writes the files in place and nothing restarts: the kubelet
// and kube-proxy re-read them (see workerCertRefresh), the kubelet's
// serving certificate is watched by the kubelet. A certificate is due once
// it has less than Options.RenewBefore left, or a third of its validity if
// that is less (short lifetimes); the loop checks every CheckInterval and
// also wakes when the next certificate falls due.
type WorkerRenewer struct {
	layout datadir.Layout
	o      certrenew.Options
	join   cluster.State
	node   string
	now    func() time.Time
	run    *supervisor.Runner
	status certrenew.State
}

// NewWorkerRenewer returns the component; o is the node's renewal options
// (RenewBefore and CheckInterval apply).
func NewWorkerRenewer(l datadir.Layout, o certrenew.Options) *WorkerRenewer {
	return &WorkerRenewer{layout: l, o: o, now: time.Now, run: supervisor.NewRunner(WorkerRenewalComponent, 0)}
}

func (w *WorkerRenewer) Name() string { return WorkerRenewalComponent }

// Init reads the join record and the node's name.
func (w *WorkerRenewer) Init(ctx context.Context) error {
	w.o = w.o.WithDefaults()
	if err := w.o.Validate(); err != nil {
		return err
	}
	st, err := cluster.Load(w.layout)
	if err != nil {
		return err
	}
	if st.Role != cluster.Worker || len(st.Agents) == 0 || st.CAHash == "" {
		return fmt.Errorf("%s names no cluster agent to renew this worker's certificates through: join the node again", cluster.Path(w.layout))
	}
	if w.node, err = NodeName(w.layout); err != nil {
		return err
	}
	w.join = st
	// Before the kubelet and kube-proxy make their clients, which read it.
	if transport.CertCallbackRefreshDuration > workerCertRefresh {
		transport.CertCallbackRefreshDuration = workerCertRefresh
	}
	return nil
}

// Start runs the loop until Stop; it has no exits to report.
func (w *WorkerRenewer) Start(ctx context.Context) error {
	w.status = certrenew.State{PID: os.Getpid(), RenewBefore: w.o.RenewBefore.String(), CheckInterval: w.o.CheckInterval.String()}
	w.run.Start(ctx, w.loop)
	return nil
}

// Stop ends the loop; a renewal in progress finishes or is cancelled
// (its files are all old or all new either way).
func (w *WorkerRenewer) Stop(ctx context.Context) error { return w.run.Stop(ctx) }

func (w *WorkerRenewer) loop(ctx context.Context) error {
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithName(WorkerRenewalComponent))
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			timer.Reset(w.check(ctx))
		}
	}
}

// renewAt is when a worker renews c: with before left, as the control
// plane's renewal does, or with a third of its validity left if that is
// less, so a short-lived certificate is not due the moment it is signed.
func renewAt(c *x509.Certificate, before time.Duration) time.Time {
	return c.NotAfter.Add(-min(before, c.NotAfter.Sub(c.NotBefore)/3))
}

// dueCerts names the certificates due at now, and the one due next.
func dueCerts(certs map[string]*x509.Certificate, before time.Duration, now time.Time) (due []string, next string, at time.Time) {
	for _, name := range WorkerCSRs {
		t := renewAt(certs[name], before)
		if !now.Before(t) {
			due = append(due, name)
		}
		if next == "" || t.Before(at) {
			next, at = name, t
		}
	}
	return due, next, at
}

// check renews if a certificate is due and returns how long to wait for
// the next check.
func (w *WorkerRenewer) check(ctx context.Context) time.Duration {
	now := w.now()
	at, err := w.renewIfDue(ctx, now)
	wait := w.o.CheckInterval
	if err != nil {
		wait = min(wait, retryAfterFailure)
		msg := err.Error()
		if msg != w.status.LastError {
			klog.FromContext(ctx).Error(err, "Could not renew the worker's certificates; retrying", "in", wait)
		}
		w.status.LastError = msg
	} else {
		w.status.LastError = ""
		if !at.IsZero() {
			wait = min(wait, at.Sub(now))
		}
	}
	wait = max(wait, time.Second)
	w.status.LastCheck, w.status.NextCheck = now, now.Add(wait)
	if err := w.status.Save(w.layout.CertRenewalState()); err != nil {
		klog.FromContext(ctx).Error(err, "Could not record the renewal state")
	}
	return wait
}

// renewIfDue renews the worker's certificates if one is due, and returns
// when the next one is.
func (w *WorkerRenewer) renewIfDue(ctx context.Context, now time.Time) (time.Time, error) {
	certs, err := w.load()
	if err != nil {
		return time.Time{}, err
	}
	due, next, at := dueCerts(certs, w.o.RenewBefore, now)
	w.status.Next, w.status.NextAt = next+".crt", at
	if len(due) == 0 {
		return at, nil
	}
	renewed, err := w.renew(ctx, certs, due, now)
	if err != nil {
		return time.Time{}, err
	}
	_, next, at = dueCerts(renewed, w.o.RenewBefore, now)
	w.status.Next, w.status.NextAt = next+".crt", at
	w.status.LastRenewed, w.status.LastRenewedAt = nil, now
	for _, name := range WorkerCSRs {
		w.status.LastRenewed = append(w.status.LastRenewed, name+".crt")
	}
	return at, nil
}

func (w *WorkerRenewer) load() (map[string]*x509.Certificate, error) {
	certs := map[string]*x509.Certificate{}
	for _, name := range WorkerCSRs {
		c, err := pki.LoadCert(w.layout.Cert(name))
		if err != nil {
			return nil, err
		}
		certs[name] = c
	}
	return certs, nil
}

// renew has the agent sign fresh keys for all of the worker's
// certificates (due names the ones that made it necessary) and writes
// them.
func (w *WorkerRenewer) renew(ctx context.Context, old map[string]*x509.Certificate, due []string, now time.Time) (map[string]*x509.Certificate, error) {
	log := klog.FromContext(ctx)
	client := old[KubeletClientCSR]
	if !now.Before(client.NotAfter) {
		return nil, fmt.Errorf("%s expired on %s, and the cluster agent renews only for a valid one: join this worker again (`kubeseed reset`, then `kubeseed join` with a line from `kubeseed add-node --worker` on a control-plane node)",
			w.layout.Cert(KubeletClientCSR), client.NotAfter.UTC().Format(time.RFC3339))
	}
	ca, err := pki.LoadCert(w.layout.Cert("ca"))
	if err != nil {
		return nil, err
	}
	for _, name := range due {
		if !ca.NotAfter.After(old[name].NotAfter.Add(time.Second)) {
			return nil, fmt.Errorf("%s cannot be renewed: the cluster CA (%s) expires on %s, no later than it; refresh the cluster's CA first", w.layout.Cert(name), w.layout.Cert("ca"), ca.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	current, err := tls.LoadX509KeyPair(w.layout.Cert(KubeletClientCSR), w.layout.Key(KubeletClientCSR))
	if err != nil {
		return nil, err
	}
	keys, csrs, err := NewWorkerCSRs(w.node)
	if err != nil {
		return nil, err
	}
	log.Info("Renewing the worker's certificates through the cluster agent", "due", due, "expires", old[due[0]].NotAfter.UTC())
	resp, addr, err := w.ask(ctx, &current, csrs)
	if err != nil {
		return nil, fmt.Errorf("%w (%s expires on %s)", err, w.layout.Cert(due[0]), old[due[0]].NotAfter.UTC().Format(time.RFC3339))
	}
	certs, err := ParseCerts(resp.Certs)
	if err == nil {
		err = bootstrap.VerifyWorkerCerts(ca, certs, keys)
	}
	for _, name := range WorkerCSRs {
		if err == nil && certs[name].Subject.CommonName != old[name].Subject.CommonName {
			err = fmt.Errorf("certificate %s is for %q, not %q", name, certs[name].Subject.CommonName, old[name].Subject.CommonName)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("the cluster agent at %s answered with certificates this worker cannot use: %w", addr, err)
	}
	if err := writeWorkerCerts(ctx, w.layout, certs, keys, now); err != nil {
		return nil, fmt.Errorf("write the renewed certificates: %w", err)
	}
	for _, name := range WorkerCSRs {
		log.Info("Renewed certificate", "cert", name+".crt", "agent", addr, "oldExpiry", old[name].NotAfter.UTC(), "newExpiry", certs[name].NotAfter.UTC())
	}
	return certs, nil
}

// ask posts the CSRs to the join record's agents in turn, until one
// answers. A refusal is the cluster's answer, so it is not asked again
// elsewhere.
func (w *WorkerRenewer) ask(ctx context.Context, cert *tls.Certificate, csrs map[string][]byte) (*RenewResponse, string, error) {
	var unreachable []string
	for _, addr := range w.join.Agents {
		resp, err := NewClient(addr, w.join.CAHash, cert).Renew(ctx, RenewRequest{CSRs: csrs})
		var refused *RefusedError
		switch {
		case err == nil:
			return resp, addr, nil
		case errors.As(err, &refused):
			return nil, addr, fmt.Errorf("the cluster agent at %s refused to renew this worker's certificates: %s", addr, refused.Message)
		}
		unreachable = append(unreachable, err.Error())
	}
	return nil, "", fmt.Errorf("%s; check that a control-plane node runs its cluster agent there and that this node reaches it", strings.Join(unreachable, "; "))
}

// writeWorkerCerts replaces the worker's keys and certificates as one set
// (a crash leaves all old or all new, see fsutil.Txn), under the lock
// `kubeseed refresh-certs` takes. Each key is renamed into place just
// before its certificate; a reader that looks in between sees a pair that
// does not match and keeps the old one until its next look (client-go a
// second later, the kubelet's serving certificate at the next file event).
func writeWorkerCerts(ctx context.Context, l datadir.Layout, certs map[string]*x509.Certificate, keys map[string]crypto.Signer, now time.Time) error {
	var changes []fsutil.Change
	for _, name := range WorkerCSRs {
		keyPEM, err := pki.EncodeKey(keys[name])
		if err != nil {
			return err
		}
		changes = append(changes,
			fsutil.Change{Path: l.Key(name), Data: keyPEM, Mode: 0o600},
			fsutil.Change{Path: l.Cert(name), Data: pki.EncodeCert(certs[name]), Mode: 0o600})
	}
	if err := fsutil.EnsureDir(l.CertsDir(), 0o700); err != nil {
		return err
	}
	if err := fsutil.EnsureDir(l.RunDir(), 0o755); err != nil {
		return err
	}
	unlock, err := fsutil.Lock(ctx, l.CertsLock())
	if err != nil {
		return err
	}
	defer unlock()
	txn := fsutil.Txn{Root: l.Root}
	if _, err := txn.Recover(); err != nil {
		return err
	}
	return txn.Commit(fsutil.Plan{Changes: changes}, now)
}
