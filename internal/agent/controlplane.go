package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/pki"
)

// learnerStall is how long a learner may stay unpromoted before the agents
// remove it again: a joiner that died half-way must not block the next.
const learnerStall = 5 * time.Minute

// Membership is the agent's hold on etcd's member list.
type Membership struct {
	Etcd *clientv3.Client
	// PeerURL is this node's etcd-ha URL for an address; the first
	// control-plane join moves the member's advertised peer URL there.
	PeerURL func(ip string) string
	// CertsDir holds the shared keys a joining control plane receives.
	CertsDir string
	// AuthorizationMode reads the cluster's mode.
	AuthorizationMode func() (string, error)
	// Stall is how long a learner may stay unpromoted; 0 is learnerStall.
	Stall time.Duration
}

// busyError asks the joiner to try again: another join holds etcd's one
// learner slot. Joins queue this way instead of failing.
type busyError struct{ msg string }

func (e busyError) Error() string { return e.msg }

// admitControlPlane adds the joiner as an etcd learner and gathers what it
// needs. localIP is the address the join came in on: the one the joiner
// reaches this node at.
func (s *Server) admitControlPlane(ctx context.Context, req JoinRequest, nodeIP, localIP string) (*ControlPlaneJoin, int, string, error) {
	m := s.cfg.Membership
	if m == nil || m.Etcd == nil {
		return nil, http.StatusServiceUnavailable, KindInternal, errors.New("this agent cannot add control planes (no etcd membership access)")
	}
	if req.EtcdPeerPort <= 0 || req.EtcdPeerPort > 65535 {
		return nil, http.StatusBadRequest, KindRequest, fmt.Errorf("etcdPeerPort %d: not a port", req.EtcdPeerPort)
	}
	mode, err := m.AuthorizationMode()
	if err != nil {
		return nil, http.StatusServiceUnavailable, KindInternal, err
	}
	keys, err := readSharedKeys(m.CertsDir)
	if err != nil {
		return nil, http.StatusInternalServerError, KindInternal, err
	}
	joinerURL := "https://" + net.JoinHostPort(nodeIP, strconv.Itoa(req.EtcdPeerPort))
	list, err := m.Etcd.MemberList(ctx)
	if err != nil {
		return nil, http.StatusServiceUnavailable, KindInternal, fmt.Errorf("read etcd's members: %w", err)
	}
	for _, mem := range list.Members {
		if mem.IsLearner || mem.Name == "" {
			if hasURL(mem.PeerURLs, joinerURL) {
				// The same joiner, retried after an interrupted join.
				if _, err := m.Etcd.MemberRemove(ctx, mem.ID); err != nil {
					return nil, http.StatusServiceUnavailable, KindInternal, fmt.Errorf("remove this node's earlier learner %x: %w", mem.ID, err)
				}
				continue
			}
			return nil, 0, "", busyError{fmt.Sprintf("another control plane (%s) is joining; this join waits its turn", memberName(mem))}
		}
		if mem.Name == req.NodeName || hasURL(mem.PeerURLs, joinerURL) {
			return nil, http.StatusConflict, KindPreflight, fmt.Errorf("etcd already has member %q at %s: if that node is gone, run `kubeseed remove-node %s --force` on a control plane first", mem.Name, strings.Join(mem.PeerURLs, ","), mem.Name)
		}
	}
	if err := s.advertiseHostPeerURL(ctx, list, localIP); err != nil {
		return nil, http.StatusServiceUnavailable, KindInternal, err
	}
	if down := s.downVoters(ctx, list); len(down) > 0 {
		return nil, http.StatusConflict, KindPreflight, fmt.Errorf("etcd member(s) %s do not answer: a control plane joins only while every voter is up; start them, or remove them with `kubeseed remove-node NAME --force`", strings.Join(down, ", "))
	}
	added, err := m.Etcd.MemberAddAsLearner(ctx, []string{joinerURL})
	if err != nil {
		switch e := rpctypes.Error(err); {
		case errors.Is(e, rpctypes.ErrTooManyLearners):
			return nil, 0, "", busyError{"another control plane is joining; this join waits its turn"}
		case errors.Is(e, rpctypes.ErrUnhealthy):
			// Every voter answered above: etcd wants the last member
			// change to settle (each voter connected for 5 s) first.
			return nil, 0, "", busyError{"etcd is settling after the last member change; this join waits"}
		}
		return nil, http.StatusConflict, KindPreflight, fmt.Errorf("etcd refused to add %s: %s", joinerURL, explainEtcd(err))
	}
	var parts []string
	for _, mem := range added.Members {
		name := mem.Name
		if mem.ID == added.Member.ID {
			name = req.NodeName
		}
		for _, u := range mem.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	sort.Strings(parts)
	klog.FromContext(ctx).Info("Added a joining control plane as an etcd learner", "node", req.NodeName, "member", fmt.Sprintf("%x", added.Member.ID), "peerURL", joinerURL)
	return &ControlPlaneJoin{
		Keys:               keys,
		EtcdMemberID:       fmt.Sprintf("%x", added.Member.ID),
		EtcdInitialCluster: strings.Join(parts, ","),
		AuthorizationMode:  mode,
	}, 0, "", nil
}

// advertiseHostPeerURL moves a single node's member from its loopback peer
// URL to this host's etcd-ha URL, which it has listened on since its first
// start: a conf change the one member commits alone, no restart.
func (s *Server) advertiseHostPeerURL(ctx context.Context, list *clientv3.MemberListResponse, localIP string) error {
	self := list.Header.MemberId
	for _, mem := range list.Members {
		if mem.ID != self || !onlyLoopback(mem.PeerURLs) {
			continue
		}
		want := s.cfg.Membership.PeerURL(localIP)
		if _, err := s.cfg.Membership.Etcd.MemberUpdate(ctx, self, []string{want}); err != nil {
			return fmt.Errorf("advertise this member's peer URL %s: %w", want, err)
		}
		klog.FromContext(ctx).Info("This etcd member now advertises the host's peer URL", "peerURL", want)
	}
	return nil
}

// downVoters names the voters whose peer port does not answer.
func (s *Server) downVoters(ctx context.Context, list *clientv3.MemberListResponse) []string {
	var down []string
	for _, mem := range list.Members {
		if mem.IsLearner || mem.ID == list.Header.MemberId {
			continue
		}
		if !anyReachable(ctx, mem.PeerURLs) {
			down = append(down, memberName(mem))
		}
	}
	return down
}

func anyReachable(ctx context.Context, urls []string) bool {
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", u.Host)
		if err == nil {
			_ = conn.Close()
			return true
		}
	}
	return false
}

// ManageLearners promotes each learner once it has caught up, and removes
// one that stays a learner longer than learnerStall. Every agent runs it;
// a promotion another agent made first fails harmlessly.
func (m *Membership) ManageLearners(ctx context.Context, every time.Duration) {
	log := klog.FromContext(ctx)
	stall := m.Stall
	if stall == 0 {
		stall = learnerStall
	}
	firstSeen := map[uint64]time.Time{}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		list, err := m.Etcd.MemberList(ctx)
		if err != nil {
			return
		}
		seen := map[uint64]bool{}
		for _, mem := range list.Members {
			if !mem.IsLearner {
				continue
			}
			seen[mem.ID] = true
			if firstSeen[mem.ID].IsZero() {
				firstSeen[mem.ID] = time.Now()
			}
			_, err := m.Etcd.MemberPromote(ctx, mem.ID)
			switch {
			case err == nil:
				log.Info("Promoted a joining control plane's etcd member to voter", "member", memberName(mem))
			case time.Since(firstSeen[mem.ID]) > stall:
				if _, err := m.Etcd.MemberRemove(ctx, mem.ID); err == nil {
					log.Info("Removed an etcd learner that did not catch up; its node may join again", "member", memberName(mem), "after", stall)
				}
			default:
				log.V(2).Info("etcd learner not promoted yet", "member", memberName(mem), "reason", err)
			}
		}
		for id := range firstSeen {
			if !seen[id] {
				delete(firstSeen, id)
			}
		}
	}, every)
}

func readSharedKeys(dir string) (map[string][]byte, error) {
	store := pki.Store{Dir: dir}
	out := map[string][]byte{}
	for _, name := range SharedKeys {
		spec, ok := pki.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("no %q in the certificate table", name)
		}
		kp, err := store.Load(spec)
		if err != nil {
			return nil, err
		}
		key, err := pki.EncodeKey(kp.Key)
		if err != nil {
			return nil, err
		}
		out[name+".key"] = key
		if !spec.KeyOnly {
			out[name+".crt"] = pki.EncodeCert(kp.Cert)
		}
	}
	return out, nil
}

func memberName(m *etcdserverpb.Member) string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("%x (%s, not started)", m.ID, strings.Join(m.PeerURLs, ","))
}

func hasURL(urls []string, want string) bool {
	for _, u := range urls {
		if u == want {
			return true
		}
	}
	return false
}

func onlyLoopback(urls []string) bool {
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return false
		}
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return len(urls) > 0
}

// explainEtcd turns etcd's quorum refusals into what to do.
func explainEtcd(err error) string {
	switch {
	case errors.Is(rpctypes.Error(err), rpctypes.ErrUnhealthy), errors.Is(rpctypes.Error(err), rpctypes.ErrMemberNotEnoughStarted):
		return err.Error() + ": a member is down or still starting; `kubeseed status` on each control plane shows which"
	}
	return err.Error()
}

// memberRemoval is the etcd side of removing a control plane.
type memberRemoval struct {
	cli *clientv3.Client
	tls *tls.Config
	// clientURL is a member's client URL at a peer host: etcd advertises
	// loopback client URLs, so a member elsewhere is reached at its peer
	// host on this node's client port.
	clientURL func(peerHost string) string
	dial      func(ctx context.Context, urls []string) bool
}

// remove takes name's etcd member out of the cluster, if it has one: it
// refuses to remove the last voter or to leave the rest without quorum,
// needs force for a member that does not answer, and moves leadership away
// from the member first. It reports whether name had a member.
func (m memberRemoval) remove(ctx context.Context, name string, force bool) (bool, error) {
	list, err := m.cli.MemberList(ctx)
	if err != nil {
		return false, fmt.Errorf("read etcd's members: %w", err)
	}
	self := list.Header.MemberId
	var target *etcdserverpb.Member
	var voters []*etcdserverpb.Member
	for _, mem := range list.Members {
		if mem.Name == name {
			target = mem
		}
		if !mem.IsLearner {
			voters = append(voters, mem)
		}
	}
	if target == nil {
		return false, nil
	}
	if target.ID == self {
		return true, fmt.Errorf("%s is this node's etcd member; remove it from another control plane", name)
	}
	targetUp := m.dial(ctx, target.PeerURLs)
	if !targetUp && !force {
		return true, fmt.Errorf("etcd member %s does not answer at %s: if that node is gone for good, `kubeseed remove-node %s --force` removes it", name, strings.Join(target.PeerURLs, ","), name)
	}
	if !target.IsLearner {
		if len(voters) == 1 {
			return true, fmt.Errorf("%s is the cluster's last etcd voter: removing it would lose the datastore", name)
		}
		var down []string
		for _, v := range voters {
			if v.ID != self && v.ID != target.ID && !m.dial(ctx, v.PeerURLs) {
				down = append(down, v.Name)
			}
		}
		remaining := len(voters) - 1
		if up := remaining - len(down); up < remaining/2+1 {
			return true, fmt.Errorf("removing %s would leave %d etcd voters of which %d answer (down: %s), short of a quorum of %d: start %s first",
				name, remaining, up, strings.Join(down, ", "), remaining/2+1, strings.Join(down, ", "))
		}
	}
	if targetUp && !target.IsLearner {
		if err := m.moveLeadershipFrom(ctx, target, self); err != nil {
			return true, err
		}
	}
	if _, err := m.cli.MemberRemove(ctx, target.ID); err != nil {
		return true, fmt.Errorf("remove etcd member %s: %s", name, explainEtcd(err))
	}
	return true, nil
}

// moveLeadershipFrom hands etcd's leadership to self if target holds it, so
// the removal does not leave the cluster without a leader for an election.
func (m memberRemoval) moveLeadershipFrom(ctx context.Context, target *etcdserverpb.Member, self uint64) error {
	st, err := m.cli.Status(ctx, m.cli.Endpoints()[0])
	if err != nil {
		return fmt.Errorf("read etcd's leader: %w", err)
	}
	if st.Leader != target.ID {
		return nil
	}
	host := ""
	for _, raw := range target.PeerURLs {
		if u, err := url.Parse(raw); err == nil {
			host = u.Hostname()
			break
		}
	}
	endpoint := m.clientURL(host)
	cfg := clientv3.Config{Endpoints: []string{endpoint}, TLS: m.tls, DialTimeout: 5 * time.Second, Context: ctx}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return fmt.Errorf("reach the etcd leader %s to move its leadership: %w", target.Name, err)
	}
	defer cli.Close()
	if _, err := cli.MoveLeader(ctx, self); err != nil {
		return fmt.Errorf("move etcd's leadership away from %s before removing it: %s", target.Name, explainEtcd(err))
	}
	klog.FromContext(ctx).Info("Moved etcd's leadership to this member before the removal", "from", target.Name)
	return nil
}

// EtcdMember is one member of the cluster's etcd, as `kubeseed status`
// shows it.
type EtcdMember struct {
	Name     string
	PeerURLs []string
	Voter    bool
	Leader   bool
	Self     bool
	// Answers: its peer port accepts connections.
	Answers bool
}

// EtcdMembers lists etcd's members through the running node's etcd.
func EtcdMembers(ctx context.Context, l datadir.Layout) ([]EtcdMember, error) {
	cli, _, err := etcdOf(l)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("read etcd's members: %w", err)
	}
	var leader uint64
	if st, err := cli.Status(ctx, cli.Endpoints()[0]); err == nil {
		leader = st.Leader
	}
	var out []EtcdMember
	for _, m := range list.Members {
		out = append(out, EtcdMember{
			Name: memberName(m), PeerURLs: m.PeerURLs, Voter: !m.IsLearner,
			Leader: m.ID == leader, Self: m.ID == list.Header.MemberId,
			Answers: m.ID == list.Header.MemberId || anyReachable(ctx, m.PeerURLs),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
