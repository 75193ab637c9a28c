package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// benchNode is a kubeseed node on a fresh temp data dir, started for one
// measurement and reset afterwards, so no run leaves cgroups, rules or
// interfaces behind.
type benchNode struct {
	bin, dir, data string
	env            []string
	cmd            *exec.Cmd
	log            *os.File
}

// startNode runs `kubeseed start` in the background, logging to logName in
// the temp dir, and waits until `status --wait-ready` passes.
func startNode(bin string, offset int, logName string) (*benchNode, error) {
	dir, err := os.MkdirTemp("", "ksb-")
	if err != nil {
		return nil, err
	}
	n := &benchNode{bin: bin, dir: dir, data: filepath.Join(dir, "data")}
	n.env = append(os.Environ(), "KUBESEED_DATA_DIR="+n.data, "KUBESEED_PORT_OFFSET="+strconv.Itoa(offset))
	if n.log, err = os.Create(filepath.Join(os.TempDir(), logName)); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n.cmd = exec.Command(bin, "start")
	n.cmd.Env, n.cmd.Stdout, n.cmd.Stderr = n.env, n.log, n.log
	if err := n.cmd.Start(); err != nil {
		n.log.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	if _, err := n.run("", "status", "--wait-ready", "--timeout", "3m"); err != nil {
		n.stop()
		return nil, fmt.Errorf("node not ready (log: %s): %w", n.log.Name(), err)
	}
	return n, nil
}

// run runs a kubeseed command against the node.
func (n *benchNode) run(stdin string, args ...string) (string, error) {
	c := exec.Command(n.bin, args...)
	c.Env, c.Stdin = n.env, strings.NewReader(stdin)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubeseed %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// stop ends the node, resets it and removes its data dir.
func (n *benchNode) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	_ = n.cmd.Wait()
	resetNode(n.bin, n.data)
	n.log.Close()
	os.RemoveAll(n.dir)
}
