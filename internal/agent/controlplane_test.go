package agent

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubeseed/kubeseed/internal/jointoken"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/testutil/etcdtest"
)

// unreachablePeer is a peer URL nothing answers at.
const unreachablePeer = "https://127.0.0.1:1"

func sharedKeysDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var specs []pki.Spec
	for _, name := range SharedKeys {
		spec, _ := pki.Lookup(name)
		specs = append(specs, spec)
	}
	if _, _, err := (pki.Store{Dir: dir}).Ensure(specs, pki.Inputs{NodeName: "cp"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func learners(t *testing.T, cli *clientv3.Client) []string {
	t.Helper()
	list, err := cli.MemberList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range list.Members {
		if m.IsLearner {
			out = append(out, strings.Join(m.PeerURLs, ","))
		}
	}
	return out
}

func TestControlPlaneJoinQueuesBehindALearner(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	a := startAgentWith(t, func(c *Config) {
		c.Membership = &Membership{
			Etcd:              cli,
			PeerURL:           func(ip string) string { return "https://" + ip + ":19001" },
			CertsDir:          sharedKeysDir(t),
			AuthorizationMode: func() (string, error) { return "RBAC", nil },
		}
	})
	ctx := context.Background()
	tok, rec, err := a.tokens.Create(ctx, jointoken.ControlPlane, time.Hour, 1, "test")
	if err != nil {
		t.Fatal(err)
	}
	req := JoinRequest{Token: tok.String(), Role: jointoken.ControlPlane, NodeName: "cp-2", Version: "v1.37.2", EtcdPeerPort: 19002}

	// Another join holds etcd's learner slot: this one is asked to wait,
	// and its token's use stays.
	stale, err := cli.MemberAddAsLearner(ctx, []string{unreachablePeer})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewClient(a.addr, a.pin, nil).Join(ctx, req)
	refusal(t, err, KindBusy, http.StatusServiceUnavailable)
	if r, ok := a.record(t, rec.ID); !ok || r.UsesLeft != 1 || len(r.Reservations) != 0 {
		t.Errorf("a busy answer kept the token's use: %+v (listed %v)", r, ok)
	}
	if _, err := cli.MemberRemove(ctx, stale.Member.ID); err != nil {
		t.Fatal(err)
	}

	resp, err := NewClient(a.addr, a.pin, nil).Join(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	cp := resp.ControlPlane
	if cp == nil || cp.AuthorizationMode != "RBAC" || cp.EtcdMemberID == "" {
		t.Fatalf("control-plane part of the answer: %+v", cp)
	}
	for _, name := range SharedKeys {
		if len(cp.Keys[name+".key"]) == 0 {
			t.Errorf("the answer lacks %s.key", name)
		}
	}
	if !strings.Contains(cp.EtcdInitialCluster, "cp-2=https://127.0.0.1:19002") || !strings.Contains(cp.EtcdInitialCluster, "etcdtest=https://127.0.0.1:19001") {
		t.Errorf("initial cluster %q", cp.EtcdInitialCluster)
	}
	if got := learners(t, cli); len(got) != 1 || got[0] != "https://127.0.0.1:19002" {
		t.Errorf("learners %v, want the joiner's", got)
	}
	if len(resp.Certs) != 0 {
		t.Errorf("a control plane got certificates signed for it: %v", resp.Certs)
	}

	// A second joiner waits behind the first.
	tok2, _, err := a.tokens.Create(ctx, jointoken.ControlPlane, time.Hour, 1, "test")
	if err != nil {
		t.Fatal(err)
	}
	req.Token, req.NodeName, req.EtcdPeerPort = tok2.String(), "cp-3", 19003
	_, err = NewClient(a.addr, a.pin, nil).Join(ctx, req)
	refusal(t, err, KindBusy, http.StatusServiceUnavailable)
}

func TestManageLearnersRemovesAStalledLearner(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := cli.MemberAddAsLearner(ctx, []string{unreachablePeer}); err != nil {
		t.Fatal(err)
	}
	go (&Membership{Etcd: cli, Stall: 300 * time.Millisecond}).ManageLearners(ctx, 50*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for len(learners(t, cli)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled learner is still a member")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMemberRemovalRefusals(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	m := memberRemoval{cli: cli, clientURL: func(h string) string { return "https://" + h + ":12379" }, dial: anyReachable}
	ctx := context.Background()
	if had, err := m.remove(ctx, "nope", false); had || err != nil {
		t.Errorf("a name etcd has no member of: %v, %v", had, err)
	}
	if _, err := m.remove(ctx, "etcdtest", true); err == nil || !strings.Contains(err.Error(), "this node's") {
		t.Errorf("removing this node's own member: %v", err)
	}
}
