package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// haResult is what measureHA reports.
type haResult struct {
	joins, recoveries []time.Duration
	crud              []crudRate
	crudLoad          float64 // the load average the CRUD load began at
}

// measureHA starts a control plane and times `runs` control-plane joins
// (from `kubeseed join` to the Node Ready; the second joiner is removed and
// joined anew between samples, so the cluster stays at three), then kills
// runs the API load through the first control plane, then kills etcd's
// leader `runs` times under a write load on another control plane and
// times the first acknowledged write after the kill.
func measureHA(bin string, runs int, quiet quietness) (haResult, error) {
	var res haResult
	removeLAN, err := newLAN()
	if err != nil {
		return res, err
	}
	defer removeLAN()
	nodes := map[string]*benchNode{}
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	first, err := lanNodeOf(bin, 0, "kubeseed-bench-ha-0.log", "start")
	if err != nil {
		return res, err
	}
	if _, err := first.run("", "status", "--wait-ready", "--timeout", "3m"); err != nil {
		first.stop()
		return res, fmt.Errorf("control plane not ready (log: %s): %w", first.log.Name(), err)
	}
	firstName := strings.TrimSpace(mustRun(first, "kubectl", "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"))
	nodes[firstName] = first
	cs, err := adminClient(first)
	if err != nil {
		return res, err
	}
	join := func(i int, name string) error {
		out, err := first.run("", "add-node", "--format", "short")
		if err != nil {
			return err
		}
		line := regexp.MustCompile(regexp.QuoteMeta(first.ns.ip) + `:\S+`).FindString(out)
		begin := time.Now()
		n, err := lanNodeOf(bin, i, fmt.Sprintf("kubeseed-bench-ha-%d.log", i), "join", line, "--node-name", name)
		if err != nil {
			return err
		}
		nodes[name] = n
		if err := waitNodeReady(cs, name, 4*time.Minute); err != nil {
			return fmt.Errorf("%w (log: %s)", err, n.log.Name())
		}
		res.joins = append(res.joins, time.Since(begin))
		fmt.Fprintf(os.Stderr, "control-plane join %d/%d: %s\n", len(res.joins), runs, ms(float64(res.joins[len(res.joins)-1])))
		return nil
	}
	if err := join(1, "cp-1"); err != nil {
		return res, err
	}
	for len(res.joins) < runs {
		if n := nodes["cp-2"]; n != nil {
			stopProcess(n.cmd)
			if _, err := first.run("", "remove-node", "cp-2", "--force"); err != nil {
				return res, err
			}
			n.stop()
			delete(nodes, "cp-2")
		}
		if err := join(2, "cp-2"); err != nil {
			return res, err
		}
	}
	// The same API load as on one node, now that three voters agree on
	// every write.
	if res.crudLoad, err = quiet.settle("API throughput, 3 members"); err != nil {
		return res, err
	}
	if res.crud, err = measureCRUD(first, runs); err != nil {
		return res, err
	}
	for range runs {
		d, err := killLeader(bin, nodes)
		if err != nil {
			return res, err
		}
		res.recoveries = append(res.recoveries, d)
		fmt.Fprintf(os.Stderr, "write recovery %d/%d: %s\n", len(res.recoveries), runs, ms(float64(d)))
	}
	return res, nil
}

func mustRun(n *benchNode, args ...string) string {
	out, _ := n.run("", args...)
	return out
}

// killLeader finds etcd's leader, writes through another control plane,
// kill -9s the leader's node and times the gap to the next acknowledged
// write; then restarts the node and waits for it.
func killLeader(bin string, nodes map[string]*benchNode) (time.Duration, error) {
	var leader, writer string
	for name, n := range nodes {
		out, _ := n.run("", "status")
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "voter, leader") {
				leader = strings.Fields(l)[0]
			}
		}
		if leader != "" {
			break
		}
		_ = name
	}
	for name := range nodes {
		if name != leader {
			writer = name
			break
		}
	}
	if nodes[leader] == nil || writer == "" {
		return 0, fmt.Errorf("no etcd leader among %v", keysOf(nodes))
	}
	cs, err := adminClient(nodes[writer])
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	acked := make(chan time.Time, 1<<16)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-ha-"}, Data: map[string]string{"i": fmt.Sprint(i)}}
			wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := cs.CoreV1().ConfigMaps("default").Create(wctx, cm, metav1.CreateOptions{})
			wcancel()
			if err == nil {
				acked <- time.Now()
			}
		}
	}()
	time.Sleep(2 * time.Second)
	victim := nodes[leader]
	_ = syscall.Kill(victim.cmd.Process.Pid, syscall.SIGKILL)
	killed := time.Now()
	// Its containerd goes with it, as in a crash of the machine; the
	// pods' shims stay, as they would.
	_ = exec.Command("pkill", "-9", "-f", "containerd --config "+victim.data).Run()
	var gap time.Duration
	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case at := <-acked:
			if at.After(killed) {
				gap = at.Sub(killed)
				break wait
			}
		case <-deadline:
			return 0, fmt.Errorf("no write acknowledged within 60 s of killing %s", leader)
		}
	}
	cancel()
	_ = victim.cmd.Wait()
	if err := restart(victim, cs, leader); err != nil {
		return 0, err
	}
	return gap, nil
}

// restart runs `kubeseed start` on n's data dir again and waits for it
// and for its Node to be Ready.
func restart(n *benchNode, cs kubernetes.Interface, name string) error {
	if err := n.start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return waitNodeReady(cs, name, 2*time.Minute)
}

func keysOf(m map[string]*benchNode) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func haRows(h haResult) [][3]string {
	return [][3]string{
		{"control-plane `kubeseed join` → Node Ready", ms(medianOf(h.joins, func(d time.Duration) float64 { return float64(d) })),
			fmt.Sprintf("median of %d joins to a running cluster, each node in a namespace of its own on one bridge: CA pin, shared keys, etcd learner → caught up → voter, then apiserver, controllers (standby), kubelet, overlay", len(h.joins))},
		{"API writes after `kill -9` of the etcd leader's control plane → first acknowledged write", ms(medianOf(h.recoveries, func(d time.Duration) float64 { return float64(d) })),
			fmt.Sprintf("median of %d kills in a 3-member cluster, ConfigMap creates through another control plane's apiserver as fast as they are answered; etcd's 1 s election timeout and the apiserver's retry make most of it", len(h.recoveries))},
	}
}
