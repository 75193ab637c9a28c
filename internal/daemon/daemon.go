// Package daemon is `kubeseed start`: it takes the data dir's lock,
// prepares the data dir, checks ports, and supervises the components.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/controlplane"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/datastore"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/services"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// Options configure a start.
type Options struct {
	Bootstrap bootstrap.Options
	// Progress receives one-line updates for the user.
	Progress func(msg string)
	// Ready is called once every component is ready.
	Ready func()
}

// Run starts the node and blocks until ctx ends or a component fails.
func Run(ctx context.Context, l datadir.Layout, o Options) error {
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if err := fsutil.EnsureDir(l.Root, 0o755); err != nil {
		return err
	}
	if err := fsutil.EnsureDir(l.RunDir(), 0o755); err != nil {
		return err
	}
	unlock, err := Lock(l)
	if err != nil {
		return err
	}
	defer unlock()

	res, err := bootstrap.Prepare(ctx, l, o.Bootstrap)
	if err != nil {
		return err
	}
	if res.FirstStart {
		progress(fmt.Sprintf("bootstrapped %s: %d certificates, %d files", l.Root, len(res.Issued), len(res.Created)))
	} else if len(res.Issued)+len(res.Created) > 0 {
		progress(fmt.Sprintf("re-created missing files: %v %v", res.Issued, res.Created))
	}
	for _, n := range res.Notices {
		progress(n)
	}
	if err := CheckPorts(l); err != nil {
		return err
	}
	sup := supervisor.New(
		datastore.NewEtcd(l),
		controlplane.NewAuthWebhook(l),
		controlplane.NewAPIServer(l),
		controlplane.NewControllerManager(l),
		controlplane.NewScheduler(l),
		controlplane.NewClusterObjects(l),
	)
	sup.Progress = progress
	err = sup.Run(ctx, o.Ready)
	klog.Flush()
	return err
}

// CheckPorts fails, naming the port and its service, if any served port is
// taken. It runs before anything starts, so a clash changes nothing.
func CheckPorts(l datadir.Layout) error {
	ports, err := services.Ports(l)
	if err != nil {
		return err
	}
	for _, s := range services.Served() {
		addr := net.JoinHostPort(s.Bind.Address(), strconv.Itoa(ports[s.Name]))
		ln, err := net.Listen(s.Protocol, addr)
		if err != nil {
			return fmt.Errorf("port %d (%s, set by --%s in %s) is not free on %s: %w; stop whatever uses it (`ss -ltnp 'sport = :%d'`) or change the port in that args file",
				ports[s.Name], s.Name, s.Flag, l.Args(s.Component), s.Bind.Address(), err, ports[s.Name])
		}
		ln.Close()
	}
	return nil
}

// Lock takes the data dir's exclusive lock and records our PID in it; the
// lock is released when the process ends, however it ends.
func Lock(l datadir.Layout) (unlock func(), err error) {
	f, err := os.OpenFile(l.PIDFile(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", l.PIDFile(), err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := RunningPID(l)
			return nil, fmt.Errorf("kubeseed is already running on %s (pid %d); stop it with `kubeseed stop`", l.Root, pid)
		}
		return nil, fmt.Errorf("lock %s: %w", l.PIDFile(), err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", l.PIDFile(), err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", l.PIDFile(), err)
	}
	return func() {
		_ = f.Truncate(0)
		f.Close()
	}, nil
}

// RunningPID returns the PID of the kubeseed holding the data dir's lock,
// or 0 if none runs.
func RunningPID(l datadir.Layout) (int, error) {
	f, err := os.Open(l.PIDFile())
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0, nil // nobody holds it
	}
	data := make([]byte, 32)
	n, _ := f.Read(data)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data[:n])))
	if err != nil {
		return 0, fmt.Errorf("%s: no PID in a locked file", l.PIDFile())
	}
	return pid, nil
}
