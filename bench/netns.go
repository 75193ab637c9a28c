package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netns is a network namespace of one benchmark node's own, set up as the
// e2e harness does (test/e2e/node_test.go, newNodeIn) but with names of its
// own, so a benchmark and a test run never collide: namespace ks-bench-<i>,
// reached from the host over a veth pair, host side veth-kb<i> with
// 198.19.<i>.1/24, node side eth0 with 198.19.<i>.2/24 and its default
// route (198.18.0.0/15 is reserved for benchmarking; the e2e nodes use
// 198.18.<i>.0/24). A node there runs on the real default ports and can
// neither meet nor be refused by a node the user runs on the host: the
// pod network is claimed per network namespace (internal/node.Claims).
type netns struct {
	name, hostIf, ip, gateway string
	// del deletes the namespace, and with it the veth pair, once.
	del func()
}

// netnsSeq numbers the namespaces of one benchmark run.
var netnsSeq atomic.Int32

// newNetns creates the next namespace. Its deletion is registered for an
// interrupt too; callers delete it with ns.del once its node is reset.
func newNetns() (*netns, error) {
	i := int(netnsSeq.Add(1)-1)%250 + 1
	return makeNetns(fmt.Sprintf("ks-bench-%d", i), fmt.Sprintf("veth-kb%d", i),
		fmt.Sprintf("198.19.%d.2", i), fmt.Sprintf("198.19.%d.1", i), "")
}

// makeNetns creates namespace name linked to the host by a veth pair: the
// host side hostIf holds gateway/24, or, if bridge is set, is a port of
// that bridge (which holds gateway) so namespaces on it share one segment.
func makeNetns(name, hostIf, ip, gateway, bridge string) (*netns, error) {
	ns := &netns{name: name, hostIf: hostIf, ip: ip, gateway: gateway}
	// Leftovers of a killed run.
	_ = exec.Command("ip", "netns", "del", ns.name).Run()
	_ = exec.Command("ip", "link", "del", ns.hostIf).Run()
	if err := runCmd(exec.Command("ip", "netns", "add", ns.name)); err != nil {
		return nil, err
	}
	ns.del = onInterrupt(func() { _ = exec.Command("ip", "netns", "del", ns.name).Run() })
	hostSide := exec.Command("ip", "addr", "add", ns.gateway+"/24", "dev", ns.hostIf)
	if bridge != "" {
		hostSide = exec.Command("ip", "link", "set", ns.hostIf, "master", bridge)
	}
	for _, c := range []*exec.Cmd{
		exec.Command("ip", "link", "add", ns.hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns.name),
		hostSide,
		exec.Command("ip", "link", "set", ns.hostIf, "up"),
		ns.command("ip", "link", "set", "lo", "up"),
		ns.command("ip", "addr", "add", ns.ip+"/24", "dev", "eth0"),
		ns.command("ip", "link", "set", "eth0", "up"),
		ns.command("ip", "route", "add", "default", "via", ns.gateway),
	} {
		if err := runCmd(c); err != nil {
			ns.del()
			return nil, err
		}
	}
	return ns, nil
}

func runCmd(c *exec.Cmd) error {
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(c.Args, " "), err, out)
	}
	return nil
}

// command runs a program in the namespace. nsenter switches only the
// network namespace and execs the program in place, so its PID is the
// program's: `ip netns exec` would also remount /sys and hide the cgroup
// hierarchies from the kubelet.
func (ns *netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns.name, name}, args...)...)
}

// inside runs f on an OS thread that has entered the namespace, so the
// sockets f makes live there. The thread is never returned to the Go
// scheduler: it ends with the goroutine.
func (ns *netns) inside(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // and never unlocked: the thread is dropped
		fd, err := unix.Open("/run/netns/"+ns.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns.name, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns.name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// dialContext dials from inside the namespace: 127.0.0.1 is the node's
// loopback. It is the Dial of every HTTP, TLS and client-go client here.
func (ns *netns) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := ns.inside(func() error {
		var err error
		conn, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// tlsDial is tls.Dial from inside the namespace.
func (ns *netns) tlsDial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := ns.dialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// interrupts holds what an interrupt must undo before the benchmark exits:
// the running node's stop and reset, and the namespaces' deletion.
var interrupts struct {
	sync.Mutex
	seq   int
	undo  map[int]func()
	fired atomic.Bool
}

// onInterrupt registers f to run if the benchmark is interrupted, and
// returns the function that runs it now instead: f runs at most once, and
// a caller racing an interrupt waits until f has finished.
func onInterrupt(f func()) func() {
	var once sync.Once
	interrupts.Lock()
	defer interrupts.Unlock()
	if interrupts.undo == nil {
		interrupts.undo = map[int]func(){}
	}
	interrupts.seq++
	id := interrupts.seq
	run := func() { once.Do(f) }
	interrupts.undo[id] = run
	return func() {
		run()
		interrupts.Lock()
		delete(interrupts.undo, id)
		interrupts.Unlock()
	}
}

// handleInterrupts undoes, on SIGINT or SIGTERM, what is registered, last
// first (the node before its namespace), and exits.
func handleInterrupts() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		interrupts.fired.Store(true)
		fmt.Fprintf(os.Stderr, "bench: %v: stopping and resetting the node, deleting its network namespace\n", s)
		interrupts.Lock()
		var ids []int
		for id := range interrupts.undo {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var undo []func()
		for _, id := range slices.Backward(ids) {
			undo = append(undo, interrupts.undo[id])
		}
		interrupts.Unlock()
		for _, f := range undo {
			f()
		}
		os.Exit(130)
	}()
}

// exit ends the benchmark with code, unless an interrupt is cleaning up:
// then that exits once done.
func exit(code int) {
	if interrupts.fired.Load() {
		select {}
	}
	os.Exit(code)
}
