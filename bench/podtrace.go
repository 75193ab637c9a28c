package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/procfs"
)

// podTrace is where one round of 100 pods spends its time: when the pods
// pass each milestone, and which processes and components burn the CPU.
type podTrace struct {
	window     time.Duration
	milestones []milestone
	processes  []share // CPU by process class over the window
	components []share // the kubeseed process's CPU profile by component
	profiled   time.Duration
	running    time.Duration // from the creates to the last pod seen Running
	toRunning  []share       // CPU by process class until then
}

// milestone is the p50 and p99 time from the creates to a pod condition.
type milestone struct {
	name     string
	p50, p99 time.Duration
}

type share struct {
	name string
	cpu  time.Duration
}

// profileSeconds covers a whole round (p99 has been above 25 s) and the
// status updates after it.
const profileSeconds = 40

// tracePods runs one warm-up round and then a traced one on a node whose
// apiserver serves pprof (the args file is edited, as a user would, and the
// node restarted). The profile covers the whole kubeseed process, since
// every component runs in it.
func tracePods(bin string, offset int) (podTrace, error) {
	var tr podTrace
	node, cs, err := podNode(bin, offset, "kubeseed-bench-podtrace.log")
	if err != nil {
		return tr, err
	}
	defer node.stop()
	if err := enableProfiling(node); err != nil {
		return tr, err
	}
	ctx := context.Background()
	if _, _, err := podRound(ctx, cs, 0, 100); err != nil {
		return tr, fmt.Errorf("warm-up round: %w", err)
	}
	shim := filepath.Join(node.data, "bin", "containerd-shim-runc-v2")
	if err := deletePods(node); err != nil {
		return tr, err
	}
	// The kubelet removes the deleted pods' sandboxes after the API has
	// forgotten them; that work must not fall into the traced round.
	if err := waitShims(ctx, cs, shim); err != nil {
		return tr, err
	}
	before := cpuByClass(node.cmd.Process.Pid, shim)
	profile := make(chan error, 2)
	profFile := filepath.Join(node.dir, "cpu.pprof")
	go func() { profile <- fetchProfile(ctx, cs, profFile) }()
	begin, seen, err := podRound(ctx, cs, 1, 100)
	if err != nil {
		return tr, fmt.Errorf("traced round: %w", err)
	}
	tr.running = time.Since(begin)
	atRunning := cpuByClass(node.cmd.Process.Pid, shim)
	if err := <-profile; err != nil {
		return tr, err
	}
	tr.window = time.Since(begin)
	after := cpuByClass(node.cmd.Process.Pid, shim)
	for _, class := range processClasses {
		tr.processes = append(tr.processes, share{class, after[class] - before[class]})
		tr.toRunning = append(tr.toRunning, share{class, atRunning[class] - before[class]})
	}
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "bench=round-1"})
	if err != nil {
		return tr, err
	}
	tr.milestones = milestones(begin, pods.Items, seen)
	if tr.components, tr.profiled, err = profileByComponent(profFile, components); err != nil {
		return tr, err
	}
	return tr, deletePods(node)
}

// enableProfiling turns the apiserver's pprof handlers on (kubeseed turns
// them off, as CIS asks) and restarts the node.
func enableProfiling(node *benchNode) error {
	path := filepath.Join(node.data, "args", "kube-apiserver")
	f, err := args.Load(path)
	if err != nil {
		return err
	}
	f.Set("profiling", "true")
	stopProcess(node.cmd)
	if err := os.WriteFile(path, f.Bytes(), 0o600); err != nil {
		return err
	}
	return node.start()
}

func shimPIDs(shim string) []int {
	var out []int
	for _, p := range procfs.PIDs() {
		if exe, err := procfs.Exe(p); err == nil && exe == shim {
			out = append(out, p)
		}
	}
	return out
}

// waitShims waits until no more shims run than the node has pods that
// are not the benchmark's (CoreDNS): one shim a pod.
func waitShims(ctx context.Context, cs kubernetes.Interface, shim string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "!bench"})
		if err != nil {
			return err
		}
		shims := len(shimPIDs(shim))
		if shims <= len(pods.Items) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d shims still run 3m after the pods were deleted, for %d other pods", shims, len(pods.Items))
		}
		time.Sleep(time.Second)
	}
}

func fetchProfile(ctx context.Context, cs kubernetes.Interface, path string) error {
	data, err := cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
		Param("seconds", fmt.Sprint(profileSeconds)).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	return os.WriteFile(path, data, 0o600)
}

// The process classes a node's CPU is counted under. kubeseed's reaped
// children are the iptables runs of kube-proxy and the overlay; containerd's
// are the CNI plugins and each shim's short-lived `start` process; the
// shims' are runc.
var processClasses = []string{"kubeseed", "kubeseed's children (iptables)", "containerd", "containerd's children (CNI plugins, `shim start`)", "shims", "shims' children (runc)"}

func cpuByClass(pid int, shim string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range ourProcesses(pid, shim) {
		cpu, ok := procfs.CPUTime(p)
		if !ok {
			continue
		}
		self, reaped := "containerd", "containerd's children (CNI plugins, `shim start`)"
		if p == pid {
			self, reaped = "kubeseed", "kubeseed's children (iptables)"
		} else if exe, _ := procfs.Exe(p); exe == shim {
			self, reaped = "shims", "shims' children (runc)"
		}
		out[self] += cpu.Self
		out[reaped] += cpu.Reaped
	}
	return out
}

// milestones reads when each pod passed its conditions (the kubelet and
// scheduler stamp them to the second) and when the watch saw it Running.
func milestones(begin time.Time, pods []corev1.Pod, seen map[string]time.Duration) []milestone {
	conds := []struct {
		name string
		t    corev1.PodConditionType
	}{
		{"scheduled (PodScheduled)", corev1.PodScheduled},
		{"sandbox and network ready (PodReadyToStartContainers)", corev1.PodReadyToStartContainers},
		{"containers started (ContainersReady)", corev1.ContainersReady},
	}
	var out []milestone
	for _, c := range conds {
		var d []time.Duration
		for _, p := range pods {
			for _, pc := range p.Status.Conditions {
				if pc.Type == c.t && pc.Status == corev1.ConditionTrue {
					// Stamps are whole seconds: count from the second the
					// creates began in.
					d = append(d, pc.LastTransitionTime.Sub(begin.Truncate(time.Second)))
				}
			}
		}
		out = append(out, pct(c.name, d))
	}
	var d []time.Duration
	for _, s := range seen {
		d = append(d, s)
	}
	return append(out, pct("seen Running by a watch (status written to the API)", d))
}

func pct(name string, d []time.Duration) milestone {
	if len(d) == 0 {
		return milestone{name: name}
	}
	slices.Sort(d)
	return milestone{name: name, p50: d[len(d)/2], p99: d[max(len(d)*99/100-1, 0)]}
}

// part names the code a profile sample's goroutine runs, by the first of
// its frames, from the root, that has the prefix.
type part struct{ name, prefix string }

// components are the kubeseed process's parts.
var components = []part{
	{"Go garbage collector", "runtime.gcBgMarkWorker"},
	{"Go garbage collector", "runtime.bgsweep"},
	{"Go garbage collector", "runtime.bgscavenge"},
	{"etcd", "go.etcd.io/etcd/"},
	{"kubelet", "k8s.io/kubernetes/pkg/kubelet"},
	{"scheduler", "k8s.io/kubernetes/pkg/scheduler"},
	{"controller-manager", "k8s.io/kubernetes/pkg/controller"},
	{"controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"},
	{"kube-proxy", "k8s.io/kubernetes/pkg/proxy"},
	{"apiserver", "k8s.io/apiserver/"},
	{"apiserver", "k8s.io/kubernetes/pkg/registry"},
	{"apiserver", "k8s.io/kubernetes/pkg/controlplane"},
	{"apiserver", "k8s.io/kube-aggregator/"},
	{"apiserver", "k8s.io/apiextensions-apiserver/"},
	{"kubeseed's own code (agent, overlay, supervisor)", "github.com/kubeseed/kubeseed/"},
	{"client-go informers and clients (any component)", "k8s.io/client-go/"},
}

const otherComponent = "other (TLS, HTTP/2, syscalls outside a component's frames)"

// profileByComponent sums a CPU profile's samples by component, reading
// `go tool pprof -traces`.
func profileByComponent(path string, parts []part) ([]share, time.Duration, error) {
	out, err := exec.Command("go", "tool", "pprof", "-traces", path).Output()
	if err != nil {
		return nil, 0, fmt.Errorf("go tool pprof -traces %s: %w", path, err)
	}
	sums, total := sumTraces(string(out), parts)
	var shares []share
	for name, cpu := range sums {
		shares = append(shares, share{name, cpu})
	}
	sort.Slice(shares, func(i, j int) bool { return shares[i].cpu > shares[j].cpu })
	return shares, total, nil
}

// sumTraces parses pprof's -traces text: blocks between dashed lines, each
// a sample's value and leaf frame on its first line and the callers, up to
// the goroutine's root, below it.
func sumTraces(text string, parts []part) (map[string]time.Duration, time.Duration) {
	sums := map[string]time.Duration{}
	var total time.Duration
	var value time.Duration
	var frames []string
	flush := func() {
		if value == 0 {
			return
		}
		sums[partOf(frames, parts)] += value
		total += value
		value, frames = 0, nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			flush()
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if d, err := time.ParseDuration(f[0]); err == nil && len(f) >= 2 && value == 0 {
			value, frames = d, []string{f[1]}
			continue
		}
		if value != 0 {
			frames = append(frames, f[0])
		}
	}
	flush()
	return sums, total
}

func partOf(frames []string, parts []part) string {
	for i := len(frames) - 1; i >= 0; i-- {
		for _, c := range parts {
			if strings.HasPrefix(frames[i], c.prefix) {
				return c.name
			}
		}
	}
	return otherComponent
}

// traceSection is docs/benchmarks.md's account of where the time goes.
func traceSection(tr podTrace, load float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "One round of 100 pods (the pod start-up rows' load) on a node after a warm-up round, traced by `go run ./bench -trace-pods` on %s; 1-minute load average %.2f before it began.\n\n",
		time.Now().UTC().Format("2006-01-02"), load)
	b.WriteString("When the pods pass each milestone, from the creates (conditions are stamped to the second):\n\n| Milestone | p50 | p99 |\n|---|---|---|\n")
	for _, m := range tr.milestones {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", m.name, ms(float64(m.p50)), ms(float64(m.p99)))
	}
	total := func(sh []share) (sum time.Duration) {
		for _, p := range sh {
			sum += p.cpu
		}
		return sum
	}
	sumRunning, sum := total(tr.toRunning), total(tr.processes)
	cores := float64(runtime.NumCPU())
	fmt.Fprintf(&b, "\nCPU used by each process class, until the last pod was seen Running (%s; the machine had %s of CPU in that time) and over the whole profile window (%s):\n\n"+
		"| Process | CPU until all Running | Share | CPU over the window | Share |\n|---|---|---|---|---|\n",
		ms(float64(tr.running)), ms(float64(tr.running)*cores), ms(float64(tr.window)))
	for i, p := range tr.processes {
		r := tr.toRunning[i]
		fmt.Fprintf(&b, "| %s | %s | %.0f%% | %s | %.0f%% |\n", p.name, ms(float64(r.cpu)), 100*float64(r.cpu)/float64(max(sumRunning, 1)),
			ms(float64(p.cpu)), 100*float64(p.cpu)/float64(max(sum, 1)))
	}
	fmt.Fprintf(&b, "| all | %s | | %s | |\n", ms(float64(sumRunning)), ms(float64(sum)))
	fmt.Fprintf(&b, "\nThe kubeseed process's CPU profile (%d s from the creates, %s sampled), by the component whose code the goroutine runs:\n\n| Component | CPU | Share |\n|---|---|---|\n",
		profileSeconds, ms(float64(tr.profiled)))
	for _, c := range tr.components {
		fmt.Fprintf(&b, "| %s | %s | %.0f%% |\n", c.name, ms(float64(c.cpu)), 100*float64(c.cpu)/float64(max(tr.profiled, 1)))
	}
	return b.String()
}

// replaceSection sets the body of the `## heading` section of path,
// adding the section at the end if it is missing.
func replaceSection(path, heading, body string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := string(data)
	head := "## " + heading + "\n"
	i := strings.Index(text, head)
	if i < 0 {
		text = strings.TrimRight(text, "\n") + "\n\n" + head + "\n" + body
		return os.WriteFile(path, []byte(text), 0o644)
	}
	rest := text[i+len(head):]
	end := strings.Index(rest, "\n## ")
	tail := ""
	if end >= 0 {
		tail = rest[end+1:]
	}
	text = text[:i] + head + "\n" + strings.TrimRight(body, "\n") + "\n"
	if tail != "" {
		text += "\n" + tail
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
