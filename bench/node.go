package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchNode is a kubeseed node on a fresh temp data dir in a network
// namespace of its own, started for one measurement and reset afterwards,
// so no run leaves cgroups, rules, interfaces or namespaces behind.
type benchNode struct {
	bin, dir, data string
	ns             *netns
	env            []string
	cmd            *exec.Cmd
	log            *os.File
	// stop ends the node, resets it, removes its data dir and deletes its
	// namespace, once; an interrupt runs it too.
	stop func()
}

// startNode runs `kubeseed start` in the background in a new network
// namespace, logging to logName in the temp dir, and waits until
// `status --wait-ready` passes.
func startNode(bin string, offset int, logName string) (*benchNode, error) {
	ns, err := newNetns()
	if err != nil {
		return nil, err
	}
	n, err := runNode(ns, bin, offset, logName, "start")
	if err != nil {
		return nil, err
	}
	if _, err := n.run("", "status", "--wait-ready", "--timeout", "3m"); err != nil {
		n.stop()
		return nil, fmt.Errorf("node not ready (log: %s): %w", n.log.Name(), err)
	}
	return n, nil
}

// runNode runs kubeseed with args (start, or join) in the background in
// ns on a fresh data dir; stop also deletes ns.
func runNode(ns *netns, bin string, offset int, logName string, args ...string) (*benchNode, error) {
	dir, err := os.MkdirTemp("", "ksb-")
	if err != nil {
		ns.del()
		return nil, err
	}
	n := &benchNode{bin: bin, dir: dir, data: filepath.Join(dir, "data"), ns: ns}
	n.env = nodeEnv(n.data, offset)
	if n.log, err = os.Create(filepath.Join(os.TempDir(), logName)); err != nil {
		os.RemoveAll(dir)
		ns.del()
		return nil, err
	}
	n.cmd = ns.command(bin, args...)
	n.cmd.Env, n.cmd.Stdout, n.cmd.Stderr = n.env, n.log, n.log
	if err := n.cmd.Start(); err != nil {
		n.log.Close()
		os.RemoveAll(dir)
		ns.del()
		return nil, err
	}
	n.stop = onInterrupt(func() {
		stopProcess(n.cmd)
		resetNode(ns, bin, n.data)
		n.log.Close()
		os.RemoveAll(n.dir)
		ns.del()
	})
	return n, nil
}

func nodeEnv(data string, offset int) []string {
	return append(os.Environ(), "KUBESEED_DATA_DIR="+data, "KUBESEED_PORT_OFFSET="+strconv.Itoa(offset))
}

// run runs a kubeseed command against the node, in its namespace.
func (n *benchNode) run(stdin string, args ...string) (string, error) {
	c := n.ns.command(n.bin, args...)
	c.Env, c.Stdin = n.env, strings.NewReader(stdin)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubeseed %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// start runs `kubeseed start` on n's data dir again, after its process
// has ended, and waits for `status --wait-ready`.
func (n *benchNode) start() error {
	n.cmd = n.ns.command(n.bin, "start")
	n.cmd.Env, n.cmd.Stdout, n.cmd.Stderr = n.env, n.log, n.log
	if err := n.cmd.Start(); err != nil {
		return err
	}
	if _, err := n.run("", "status", "--wait-ready", "--timeout", "4m"); err != nil {
		return fmt.Errorf("not ready after restart (log: %s): %w", n.log.Name(), err)
	}
	return nil
}

// stopProcess ends `kubeseed start` with SIGTERM, and kills it after a
// minute.
func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// resetNode removes what a stopped benchmark node left on the host, from
// inside its namespace.
func resetNode(ns *netns, bin, data string) {
	_ = ns.command(bin, "--data-dir", data, "reset", "--yes").Run()
}
