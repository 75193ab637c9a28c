package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/certrenew"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/pki"
)

func TestWorkerRenewalThreshold(t *testing.T) {
	const day = 24 * time.Hour
	// pki backdates NotBefore by 5 minutes for clock skew; so do these.
	const skew = 5 * time.Minute
	cases := []struct {
		name     string
		lifetime time.Duration // as the agent signs it
		before   time.Duration // the node's --cert-renew-days
		age      time.Duration // since it was signed
		due      bool
	}{
		{"90 days, 30 days before: early on", 90 * day, 30 * day, day, false},
		{"90 days, 30 days before: just short of 30 days left", 90 * day, 30 * day, 60*day - time.Minute, false},
		{"90 days, 30 days before: 30 days left", 90 * day, 30 * day, 60 * day, true},
		{"90 days, 30 days before: expired", 90 * day, 30 * day, 91 * day, true},
		{"a third of the validity comes before RenewBefore", 90 * day, 60 * day, 50 * day, false},
		{"a third of the validity comes before RenewBefore: due", 90 * day, 60 * day, 60*day + 2*time.Minute, true},
		{"short lifetime: not due when signed", 4 * time.Minute, 30 * day, 0, false},
		{"short lifetime: a third of 9m left is 3m", 4 * time.Minute, 30 * day, 59 * time.Second, false},
		{"short lifetime: due", 4 * time.Minute, 30 * day, time.Minute, true},
		{"the shortest lifetime the agent signs is not due when signed", MinWorkerCertLifetime, 30 * day, 0, false},
		{"RenewBefore shorter than a third", time.Hour, 10 * time.Minute, 49 * time.Minute, false},
		{"RenewBefore shorter than a third: due", time.Hour, 10 * time.Minute, 50 * time.Minute, true},
	}
	signed := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cert := &x509.Certificate{NotBefore: signed.Add(-skew), NotAfter: signed.Add(c.lifetime)}
			if got := !signed.Add(c.age).Before(renewAt(cert, c.before)); got != c.due {
				t.Errorf("due %v, want %v (renewAt %s after signing)", got, c.due, renewAt(cert, c.before).Sub(signed))
			}
		})
	}
	t.Run("the one due first is next", func(t *testing.T) {
		certs := map[string]*x509.Certificate{}
		for i, name := range WorkerCSRs {
			certs[name] = &x509.Certificate{NotBefore: signed, NotAfter: signed.Add(time.Duration(100-10*i) * day)}
		}
		due, next, at := dueCerts(certs, 20*day, signed.Add(65*day))
		if want := signed.Add(60 * day); !slices.Equal(due, []string{ProxyCSR}) || next != ProxyCSR || !at.Equal(want) {
			t.Errorf("due %v, next %s at %s; want %s due and next at %s", due, next, at, ProxyCSR, want)
		}
	})
}

// worker is a worker's data dir as join leaves it, for the renewal.
type worker struct {
	l     datadir.Layout
	ca    *pki.KeyPair
	state cluster.State
}

func newWorker(t *testing.T, a *testAgent, node string, signed time.Time, life time.Duration, agents ...string) *worker {
	t.Helper()
	l, err := datadir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.Cert("ca"), pki.EncodeCert(a.ca.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range WorkerCSRs {
		spec, _ := pki.Lookup(name)
		spec.Lifetime = life
		kp, err := pki.Issue(spec, pki.Inputs{NodeName: node}, a.ca, signed)
		if err != nil {
			t.Fatal(err)
		}
		if err := (pki.Store{Dir: l.CertsDir()}).Save(spec, kp); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(l.Args("kubelet"), []byte("--hostname-override="+node+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := cluster.State{Role: cluster.Worker, Agents: agents, CAHash: a.pin, APIServers: []string{"127.0.0.1:16443"}, NodeIP: "127.0.0.1"}
	if err := cluster.Save(l, st); err != nil {
		t.Fatal(err)
	}
	return &worker{l: l, ca: a.ca, state: st}
}

// files is every certificate and key of the worker, by file name.
func (w *worker) files(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range WorkerCSRs {
		for _, p := range []string{w.l.Cert(name), w.l.Key(name)} {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(p)] = data
		}
	}
	return out
}

func (w *worker) renewer(t *testing.T, now time.Time) *WorkerRenewer {
	t.Helper()
	r := NewWorkerRenewer(w.l, certrenew.Options{RenewBefore: 30 * 24 * time.Hour, CheckInterval: time.Hour, IPPollInterval: time.Second})
	r.now = func() time.Time { return now }
	if err := r.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestWorkerRenewsThroughTheAgent: a due worker gets fresh keys signed by
// the agent, written in place; a removed node, an unreachable agent and an
// expired certificate leave the files as they were, with an error that
// says where and what to do.
func TestWorkerRenewsThroughTheAgent(t *testing.T) {
	const life = 10 * time.Minute // the agent's; validity 15m, renewed with 5m left
	a := startAgentWith(t, func(c *Config) { c.WorkerCertLifetime = life })
	addNode(t, a, "w1", "127.0.0.1")
	ctx := context.Background()
	now := time.Now()
	// Signed for 10 minutes 8 minutes ago: 2 minutes left, due.
	w := newWorker(t, a, "w1", now.Add(-8*time.Minute), life, "127.0.0.1:1", a.addr)
	before := w.files(t)
	oldSerial := mustLoad(t, w.l.Cert(KubeletClientCSR)).SerialNumber

	r := w.renewer(t, now)
	wait := r.check(ctx)
	if r.status.LastError != "" {
		t.Fatalf("renewal failed: %s", r.status.LastError)
	}
	after := w.files(t)
	certs, keys := map[string]*x509.Certificate{}, map[string]*pki.KeyPair{}
	for _, name := range WorkerCSRs {
		if bytes.Equal(before[name+".key"], after[name+".key"]) || bytes.Equal(before[name+".crt"], after[name+".crt"]) {
			t.Errorf("%s: key or certificate not replaced", name)
		}
		kp, err := pki.LoadPair(w.l.Cert(name), w.l.Key(name))
		if err != nil {
			t.Fatal(err)
		}
		certs[name], keys[name] = kp.Cert, kp
		for _, p := range []string{w.l.Cert(name), w.l.Key(name)} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v (%v), want 0600", p, fi.Mode().Perm(), err)
			}
		}
		if left := time.Until(kp.Cert.NotAfter); left > life || left < life-time.Minute {
			t.Errorf("%s: %s left, want the agent's %s", name, left, life)
		}
	}
	signers := map[string]crypto.Signer{}
	for name, kp := range keys {
		signers[name] = kp.Key
	}
	if err := bootstrap.VerifyWorkerCerts(w.ca.Cert, certs, signers); err != nil {
		t.Error(err)
	}
	if certs[KubeletClientCSR].SerialNumber.Cmp(oldSerial) == 0 {
		t.Error("same serial")
	}
	if certs[KubeletClientCSR].Subject.CommonName != "system:node:w1" || certs[ProxyCSR].Subject.CommonName != "system:kube-proxy" {
		t.Errorf("subjects %v, %v", certs[KubeletClientCSR].Subject, certs[ProxyCSR].Subject)
	}
	if want := renewAt(certs[KubeletClientCSR], 30*24*time.Hour).Sub(now); wait < want-time.Minute || wait > want {
		t.Errorf("next check in %s, want when the new certificates are due, %s", wait, want)
	}
	st, err := certrenew.ReadState(w.l.CertRenewalState())
	if err != nil || st == nil || len(st.LastRenewed) != 3 || st.Next == "" {
		t.Errorf("state %+v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(w.l.Root, ".certs-staging")); !os.IsNotExist(err) {
		t.Error("the staging dir is left")
	}

	t.Run("not due: nothing changes", func(t *testing.T) {
		r.check(ctx)
		if !sameFiles(after, w.files(t)) || r.status.LastError != "" {
			t.Errorf("a check with nothing due changed the files or failed: %s", r.status.LastError)
		}
	})

	later := now.Add(7 * time.Minute) // the renewed ones are due
	refused := []struct {
		name    string
		prepare func(t *testing.T) *WorkerRenewer
		want    []string // in the error
	}{
		{"unreachable agent", func(t *testing.T) *WorkerRenewer {
			st := w.state
			st.Agents = []string{"127.0.0.1:1"}
			if err := cluster.Save(w.l, st); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cluster.Save(w.l, w.state) })
			return w.renewer(t, later)
		}, []string{"127.0.0.1:1", "check that a control-plane node runs its cluster agent there", "expires on"}},
		{"removed node", func(t *testing.T) *WorkerRenewer {
			if err := a.kube.CoreV1().Nodes().Delete(ctx, "w1", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { addNode(t, a, "w1", "127.0.0.1") })
			return w.renewer(t, later)
		}, []string{a.addr, "refused", "not in this cluster", "kubeseed reset"}},
		{"expired client certificate", func(t *testing.T) *WorkerRenewer {
			return w.renewer(t, now.Add(time.Hour))
		}, []string{"kubelet.crt expired", "join this worker again"}},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			r := c.prepare(t)
			if wait := r.check(ctx); wait > retryAfterFailure {
				t.Errorf("retry in %s after a failure", wait)
			}
			for _, s := range c.want {
				if !strings.Contains(r.status.LastError, s) {
					t.Errorf("error %q does not say %q", r.status.LastError, s)
				}
			}
			if !sameFiles(after, w.files(t)) {
				t.Error("a failed renewal changed the files")
			}
		})
	}
}

func mustLoad(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := pki.LoadCert(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sameFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
