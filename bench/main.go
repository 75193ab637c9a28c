// Command bench measures kubeseed's start-up time and memory on this
// machine and writes a Markdown table (default docs/benchmarks.md).
//
// Every benchmark node runs in a network namespace of its own (see
// netns.go), as root, so a node the user runs on the host neither refuses
// nor meets it.
//
//	KUBESEED_BIN=bin/kubeseed go run ./bench [-runs 5] [-out docs/benchmarks.md]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeseed/kubeseed/internal/images"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/procfs"
)

const apiPort = 16443

func main() {
	runs := flag.Int("runs", 5, "runs per measurement; the median is reported")
	out := flag.String("out", "docs/benchmarks.md", "Markdown file to write")
	offset := flag.Int("port-offset", 0, "port offset for the benchmark nodes (each runs in a network namespace of its own, so the default ports are free)")
	maxLoad := flag.Float64("max-load", float64(runtime.NumCPU())/2, "the 1-minute load average each measurement waits for before it begins")
	onlyDNS := flag.Bool("only-dns", false, "run only the DNS measurement and update its rows in the file")
	onlyPods := flag.Bool("only-pods", false, "run only the pod start-up measurement and update its rows in the file")
	onlyHA := flag.Bool("only-ha", false, "run only the highly available control plane measurements (control-plane join, write recovery after a kill, API throughput on 3 members) and update their rows in the file")
	onlyCluster := flag.Bool("only-cluster", false, "run only the cluster measurements (join, worker memory, pod network) and update their rows in the file")
	onlyCRUD := flag.Bool("only-crud", false, "run only the one-node API throughput measurement and update its rows in the file")
	tracePodsFlag := flag.Bool("trace-pods", false, "trace one round of 100 pods (milestones, CPU by process and by component) and write the breakdown into the file's \""+traceHeading+"\" section")
	flag.Parse()
	bin := os.Getenv("KUBESEED_BIN")
	if bin == "" {
		bin = "bin/kubeseed"
	}
	handleInterrupts()
	b := bench{bin: bin, runs: *runs, offset: *offset, quiet: quietness{maxLoad: *maxLoad, wait: 10 * time.Minute}}
	var rows []row
	var err error
	switch {
	case *onlyDNS:
		rows, err = b.dns()
	case *onlyPods:
		rows, err = b.pods()
	case *onlyHA:
		rows, err = b.ha()
	case *onlyCluster:
		rows, err = b.cluster()
	case *onlyCRUD:
		rows, err = b.crud()
	case *tracePodsFlag:
		err = b.tracePods(*out)
	default:
		rows, err = b.all()
		if err == nil {
			err = writeTable(*out, *runs, rows)
		}
		rows = nil
	}
	if err == nil && rows != nil {
		err = updateRows(*out, rows)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		exit(1)
	}
	exit(0)
}

// bench is one invocation's settings; each method measures one group of
// rows, waiting for a quiet machine first.
type bench struct {
	bin          string
	runs, offset int
	quiet        quietness
}

// all measures every group, in the order of the table.
func (b bench) all() ([]row, error) {
	var rows []row
	for _, group := range []func() ([]row, error){b.starts, b.pods, b.refresh, b.crud, b.dns, b.cluster, b.ha} {
		r, err := group()
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

type sample struct {
	ready      time.Duration // apiserver /readyz
	nodeReady  time.Duration // every service healthy and the Node Ready
	cpu        time.Duration // CPU used by our processes from start to node Ready
	rssKB      int           // kubeseed alone
	totalKB    int           // VmRSS summed over kubeseed, containerd and shims
	totalPssKB int           // the same processes' PSS
}

// starts times cold and warm starts, their CPU and memory, and reports the
// binary's size.
func (b bench) starts() ([]row, error) {
	load, err := b.quiet.settle("start-up")
	if err != nil {
		return nil, err
	}
	var cold, warm []sample
	for i := 0; i < b.runs; i++ {
		// One namespace for both starts: the warm one finds the
		// certificates naming the node's address unchanged.
		ns, err := newNetns()
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "kubeseed-bench-")
		if err != nil {
			ns.del()
			return nil, err
		}
		cleanup := onInterrupt(func() {
			resetNode(ns, b.bin, filepath.Join(dir, "data"))
			os.RemoveAll(dir)
			ns.del()
		})
		s, err := measure(b.bin, ns, dir, b.offset)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("cold run %d: %w", i+1, err)
		}
		cold = append(cold, s)
		s, err = measure(b.bin, ns, dir, b.offset)
		cleanup()
		if err != nil {
			return nil, fmt.Errorf("warm run %d: %w", i+1, err)
		}
		warm = append(warm, s)
		fmt.Fprintf(os.Stderr, "run %d/%d: cold %s (Ready %s), warm %s (Ready %s)\n", i+1, b.runs,
			cold[i].ready.Round(time.Millisecond), cold[i].nodeReady.Round(time.Millisecond),
			warm[i].ready.Round(time.Millisecond), warm[i].nodeReady.Round(time.Millisecond))
	}
	size, err := os.Stat(b.bin)
	if err != nil {
		return nil, err
	}
	dur := func(s []sample, key func(sample) time.Duration) string {
		return ms(median(s, func(s sample) float64 { return float64(key(s)) }))
	}
	kb := func(s []sample, key func(sample) int) string {
		return mib(median(s, func(s sample) float64 { return float64(key(s)) }))
	}
	nodeReady := func(s sample) time.Duration { return s.nodeReady }
	cpu := func(s sample) time.Duration { return s.cpu }
	return withLoad(load, [][3]string{
		{"`kubeseed start`, empty data dir → node Ready (every service healthy, Node Ready)", dur(cold, nodeReady), "containerd, etcd, apiserver, controller-manager, scheduler, kubelet, kube-proxy; the kubelet starts once the controller-manager has built its controllers (README: \"One process, one catch\"), which on a first start includes creating its ~40 controller service accounts"},
		{"`kubeseed start`, warm data dir → node Ready", dur(warm, nodeReady), ""},
		{"CPU time from `kubeseed start` to node Ready, empty data dir", dur(cold, cpu), "user + system of kubeseed, containerd, the shims and the children they reaped (iptables, CNI plugins, runc), summed over cores"},
		{"CPU time from `kubeseed start` to node Ready, warm data dir", dur(warm, cpu), ""},
		{"idle memory of all our processes (kubeseed + containerd + shims), warm, 10 s after Ready, PSS", kb(warm, func(s sample) int { return s.totalPssKB }), "proportional set size: pages shared between kubeseed and containerd (same binary) counted once; the CoreDNS pod's shim is included, CoreDNS itself is in its own row"},
		{"the same, VmRSS summed", kb(warm, func(s sample) int { return s.totalKB }), "counts the shared code pages once per process"},
		{"`kubeseed start`, empty data dir → apiserver `/readyz` OK", dur(cold, func(s sample) time.Duration { return s.ready }), bootstrapNote()},
		{"`kubeseed start`, warm data dir → apiserver `/readyz` OK", dur(warm, func(s sample) time.Duration { return s.ready }), ""},
		{"RSS of the kubeseed process, empty data dir, 10 s after Ready", kb(cold, func(s sample) int { return s.rssKB }), "etcd + auth webhook + apiserver + controller-manager + scheduler + kubelet + kube-proxy in one process"},
		{"RSS of the kubeseed process, warm data dir, 10 s after Ready", kb(warm, func(s sample) int { return s.rssKB }), ""},
		{"size of the `kubeseed` binary", fmt.Sprintf("%.1f MiB", float64(size.Size())/(1<<20)), "stripped (-s -w); it embeds containerd, runc's shim, CoreDNS and the pause image"},
	}), nil
}

func (b bench) pods() ([]row, error) {
	load, err := b.quiet.settle("pod start-up")
	if err != nil {
		return nil, err
	}
	rounds, err := measurePods(b.bin, b.offset, 100, b.runs)
	if err != nil {
		return nil, fmt.Errorf("pod start-up: %w", err)
	}
	return withLoad(load, [][3]string{
		{"pod start-up, create → Running, p50 (100 pods of the local busybox image, created at once)", ms(medianOf(rounds, func(p podLatency) float64 { return p.p50 })),
			"image imported with `kubeseed images import`; 100 concurrent API creates, each pod timed from the creates to the watch event showing it Running; pods deleted between runs, one node"},
		{"pod start-up, create → Running, p99", ms(medianOf(rounds, func(p podLatency) float64 { return p.p99 })), ""},
	}), nil
}

const traceHeading = "Where pod start-up time goes"

func (b bench) tracePods(out string) error {
	load, err := b.quiet.settle("pod trace")
	if err != nil {
		return err
	}
	tr, err := tracePods(b.bin, b.offset)
	if err != nil {
		return fmt.Errorf("pod trace: %w", err)
	}
	section := traceSection(tr, load)
	fmt.Print(section)
	return replaceSection(out, traceHeading, section)
}

func (b bench) refresh() ([]row, error) {
	load, err := b.quiet.settle("refresh-certs")
	if err != nil {
		return nil, err
	}
	refresh, err := measureRefresh(b.bin, b.offset, b.runs)
	if err != nil {
		return nil, fmt.Errorf("refresh-certs: %w", err)
	}
	return withLoad(load, [][3]string{
		{"`kubeseed refresh-certs --cert server.crt` → new certificate served on the apiserver port", ms(median(refresh, func(s sample) float64 { return float64(s.ready) })),
			"running node, no restart; the command itself waits until the new certificate is served"},
	}), nil
}

func (b bench) crud() ([]row, error) {
	n, err := startNode(b.bin, b.offset, "kubeseed-bench-crud.log")
	if err != nil {
		return nil, err
	}
	defer n.stop()
	load, err := b.quiet.settle("API throughput, one node")
	if err != nil {
		return nil, err
	}
	rates, err := measureCRUD(n, b.runs)
	if err != nil {
		return nil, err
	}
	return withLoad(load, crudRows("one node", crudNote("one node, the client in its namespace"), rates)), nil
}

func (b bench) dns() ([]row, error) {
	load, err := b.quiet.settle("DNS")
	if err != nil {
		return nil, err
	}
	d, err := measureDNS(b.bin, b.offset)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return withLoad(load, dnsRows(d)), nil
}

func (b bench) cluster() ([]row, error) {
	load, err := b.quiet.settle("cluster")
	if err != nil {
		return nil, err
	}
	c, err := measureCluster(b.bin, b.runs)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return withLoad(load, clusterRows(c)), nil
}

func (b bench) ha() ([]row, error) {
	load, err := b.quiet.settle("HA control plane")
	if err != nil {
		return nil, err
	}
	h, err := measureHA(b.bin, b.runs, b.quiet)
	if err != nil {
		return nil, fmt.Errorf("HA: %w", err)
	}
	rows := withLoad(load, haRows(h))
	return append(rows, withLoad(h.crudLoad, crudRows("3-member cluster", crudNote("3 control planes, each an etcd voter, all on this machine's 2 cores (so they also share the CPU), load through one apiserver"), h.crud))...), nil
}

// measure starts a node on dir in ns, times it to /readyz, samples RSS and
// stops it.
func measure(bin string, ns *netns, dir string, offset int) (sample, error) {
	logf, err := os.Create(filepath.Join(os.TempDir(), "kubeseed-bench.log"))
	if err != nil {
		return sample{}, err
	}
	defer logf.Close()
	data := filepath.Join(dir, "data")
	env := nodeEnv(data, offset)
	// nsenter execs kubeseed in place: cmd.Process.Pid is kubeseed's.
	cmd := ns.command(bin, "start")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	defer onInterrupt(func() { stopProcess(cmd) })()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", apiPort+offset)
	for {
		if ctx.Err() != nil {
			return sample{}, fmt.Errorf("not ready in 3m; see %s", logf.Name())
		}
		if ready(ns, filepath.Join(data, "certs", "ca.crt"), url) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := sample{ready: time.Since(begin)}
	// Every service healthy and the Node Ready: the node can run pods.
	status := ns.command(bin, "--data-dir", data, "status", "--wait-ready", "--timeout", "2m")
	status.Env = env
	if err := status.Run(); err != nil {
		return sample{}, fmt.Errorf("status --wait-ready: %w", err)
	}
	s.nodeReady = time.Since(begin)
	shim := filepath.Join(data, "bin", "containerd-shim-runc-v2")
	for _, p := range ourProcesses(cmd.Process.Pid, shim) {
		if cpu, ok := procfs.CPUTime(p); ok {
			s.cpu += cpu.Total()
		}
	}
	// Idle: let start-up work settle before sampling memory.
	time.Sleep(10 * time.Second)
	s.rssKB = rss(cmd.Process.Pid)
	for _, p := range ourProcesses(cmd.Process.Pid, shim) {
		s.totalKB += rss(p)
		s.totalPssKB += pss(p)
	}
	return s, nil
}

// measureRefresh starts a node and times `refresh-certs --cert server.crt`
// from the command's start until a TLS client sees the new certificate.
func measureRefresh(bin string, offset, runs int) ([]sample, error) {
	n, err := startNode(bin, offset, "kubeseed-bench-refresh.log")
	if err != nil {
		return nil, err
	}
	defer n.stop()
	data := n.data
	addr := fmt.Sprintf("127.0.0.1:%d", apiPort+offset)
	var out []sample
	for i := 0; i < runs; i++ {
		before, err := servedSerial(n.ns, filepath.Join(data, "certs", "ca.crt"), addr)
		if err != nil {
			return nil, err
		}
		begin := time.Now()
		if _, err := n.run("", "refresh-certs", "--cert", "server.crt"); err != nil {
			return nil, err
		}
		for {
			s, err := servedSerial(n.ns, filepath.Join(data, "certs", "ca.crt"), addr)
			if err == nil && s != before {
				break
			}
			if time.Since(begin) > time.Minute {
				return nil, fmt.Errorf("new certificate not served after a minute")
			}
			time.Sleep(5 * time.Millisecond)
		}
		out = append(out, sample{ready: time.Since(begin)})
	}
	return out, nil
}

// servedSerial is the serial number of the certificate served on addr in
// the namespace.
func servedSerial(ns *netns, caFile, addr string) (string, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := ns.tlsDial(addr, &tls.Config{RootCAs: pool})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// ready says whether url, in the namespace, answers 200 OK.
func ready(ns *netns, caFile, url string) bool {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: ns.dialContext}}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// ourProcesses is kubeseed, its children (containerd) and the runc shims,
// which containerd starts detached, so they are not its descendants. Pods'
// own processes are workloads and are not counted.
func ourProcesses(pid int, shim string) []int {
	procs := procfs.Descendants(pid)
	for _, p := range procfs.PIDs() {
		if exe, err := procfs.Exe(p); err == nil && exe == shim && !slices.Contains(procs, p) {
			procs = append(procs, p)
		}
	}
	return procs
}

// pss is a process's proportional set size in KiB: shared pages divided
// among the processes that map them, so a sum over processes is honest.
func pss(pid int) int { return procKB(pid, "smaps_rollup", "Pss:") }

// rss is a process's resident set size in KiB.
func rss(pid int) int { return procKB(pid, "status", "VmRSS:") }

// procKB reads a "Key: N kB" line of /proc/PID/file.
func procKB(pid int, file, key string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key {
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	return 0
}

func median(s []sample, key func(sample) float64) float64 { return medianOf(s, key) }

func medianOf[T any](s []T, key func(T) float64) float64 {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = key(s[i])
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func dnsRows(dns dnsResult) [][3]string {
	return [][3]string{
		{"DNS lookup from a pod, p50", usec(dns.p50), fmt.Sprintf("`kubernetes.default.svc.cluster.local.` (A and AAAA in parallel, Go resolver) via the kube-dns Service; %d lookups after one warm-up, one run", dns.queries)},
		{"DNS lookup from a pod, p99", usec(dns.p99), "same lookups"},
		{"CoreDNS idle RSS", mib(float64(dns.rssKB)), "the coredns process in its pod, 30 s after the first lookup; one run"},
	}
}

func ms(ns float64) string { return fmt.Sprintf("%.2f s", ns/1e9) }
func usec(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
}
func mib(kb float64) string { return fmt.Sprintf("%.0f MiB", kb/1024) }

// bootstrapNote says what a first start issues, from the certificate table.
func bootstrapNote() string {
	kubeconfigs := 0
	for _, s := range pki.Table {
		if s.Kubeconfig != "" {
			kubeconfigs++
		}
	}
	return fmt.Sprintf("includes bootstrap: %d keys and certificates, %d kubeconfigs", len(pki.Table), kubeconfigs)
}

type podLatency struct{ p50, p99 float64 }

// benchImage is the local image the pod benchmark runs: busybox, built
// here and imported with `kubeseed images import`, as a user would.
const benchImage = "kubeseed.local/busybox:bench"

// measurePods runs `rounds` rounds on one fresh node: create n pods of the
// local image at once, record when each is first seen Running, delete them
// all and wait until they are gone. It returns each round's percentiles.
func measurePods(bin string, offset, n, rounds int) ([]podLatency, error) {
	node, cs, err := podNode(bin, offset, "kubeseed-bench-pods.log")
	if err != nil {
		return nil, err
	}
	defer node.stop()
	var out []podLatency
	for r := 0; r < rounds; r++ {
		_, seen, err := podRound(context.Background(), cs, r, n)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r+1, err)
		}
		lat := percentiles(seen)
		fmt.Fprintf(os.Stderr, "pods round %d/%d: p50 %s p99 %s\n", r+1, rounds, ms(lat.p50), ms(lat.p99))
		out = append(out, lat)
		if err := deletePods(node); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// podNode starts a node for the pod measurements with the local image
// imported, and returns a client for it.
func podNode(bin string, offset int, logName string) (*benchNode, kubernetes.Interface, error) {
	node, err := startNode(bin, offset, logName)
	if err != nil {
		return nil, nil, err
	}
	cs, err := preparePods(node)
	if err != nil {
		node.stop()
		return nil, nil, err
	}
	return node, cs, nil
}

func preparePods(node *benchNode) (kubernetes.Interface, error) {
	archive, err := busyboxArchive(node.dir)
	if err != nil {
		return nil, err
	}
	if out, err := node.run("", "images", "import", archive); err != nil {
		return nil, fmt.Errorf("import %s: %v\n%s", archive, err, out)
	}
	// Pods need the namespace's default service account, made by the
	// controller-manager shortly after start.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if _, err := node.run("", "kubectl", "get", "serviceaccount", "default"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no default service account after 1m")
		}
	}
	cfg, err := adminConfig(node)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 200, 200 // the benchmark client must not be the bottleneck
	return kubernetes.NewForConfig(cfg)
}

// deletePods deletes every benchmark pod and waits until they are gone.
func deletePods(node *benchNode) error {
	if o, err := node.run("", "kubectl", "delete", "pods", "-l", "bench", "--wait=true", "--timeout=5m"); err != nil {
		return fmt.Errorf("delete pods: %v\n%s", err, o)
	}
	return nil
}

// podRound creates n pods of the local image at once through the API and
// watches them: each pod's latency is from the create call to the watch
// event that shows it Running. A watch rather than polling keeps the
// measurement from competing with the node for CPU.
func podRound(ctx context.Context, cs kubernetes.Interface, round, n int) (time.Time, map[string]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	sel := fmt.Sprintf("bench=round-%d", round)
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return time.Time{}, nil, err
	}
	defer func() { w.Stop() }()
	begin := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d-%d", round, i), Labels: map[string]string{"bench": fmt.Sprintf("round-%d", round)}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64),
					Containers:                    []corev1.Container{{Name: "c", Image: benchImage, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"}}},
				},
			}
			if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return begin, nil, fmt.Errorf("create pods: %w", err)
	}
	seen := map[string]time.Duration{}
	note := func(pod *corev1.Pod) {
		if _, dup := seen[pod.Name]; !dup && pod.Status.Phase == corev1.PodRunning {
			seen[pod.Name] = time.Since(begin)
		}
	}
	for len(seen) < n {
		select {
		case <-ctx.Done():
			return begin, nil, fmt.Errorf("only %d of %d pods Running after 5m", len(seen), n)
		case ev, ok := <-w.ResultChan():
			if ok {
				if pod, isPod := ev.Object.(*corev1.Pod); isPod {
					note(pod)
				}
				continue
			}
			// The apiserver may end a watch (it did under this load):
			// list what happened meanwhile and watch on from there.
			list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err != nil {
				return begin, nil, fmt.Errorf("the pod watch ended with %d of %d pods Running, and listing them failed: %w", len(seen), n, err)
			}
			for i := range list.Items {
				note(&list.Items[i])
			}
			if w, err = cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: list.ResourceVersion}); err != nil {
				return begin, nil, fmt.Errorf("watch pods again: %w", err)
			}
			fmt.Fprintf(os.Stderr, "the pod watch ended with %d of %d pods Running; watching again\n", len(seen), n)
		}
	}
	return begin, seen, nil
}

// percentiles are the p50 and p99 of per-pod latencies.
func percentiles(seen map[string]time.Duration) podLatency {
	var lat []float64
	for _, d := range seen {
		lat = append(lat, float64(d))
	}
	sort.Float64s(lat)
	return podLatency{p50: lat[len(lat)/2], p99: lat[max((len(lat)*99)/100-1, 0)]}
}

// busyboxArchive writes the benchmark's local image as an OCI archive.
func busyboxArchive(dir string) (string, error) {
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", fmt.Errorf("busybox-static is needed (apt-get install busybox-static): %w", err)
	}
	archive, err := images.BuildOCIArchive(images.Busybox(benchImage, bin, "sh", "sleep"))
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "busybox.tar")
	return path, os.WriteFile(path, archive, 0o644)
}
