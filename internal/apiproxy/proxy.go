package apiproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// proxyConn is one client connection and its upstream.
type proxyConn struct {
	client, upstream net.Conn
}

// close ends both halves; the copy goroutines then return.
func (c *proxyConn) close() {
	_ = c.client.Close()
	_ = c.upstream.Close()
}

func closeConns(conns []*proxyConn) {
	for _, c := range conns {
		c.close()
	}
}

// Run listens on Config.Listen and proxies connections until ctx ends. It
// then closes the listener and every proxied connection and returns nil once
// all its goroutines are done. It fails if it cannot listen. Run can be
// called once.
func (p *Proxy) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("apiproxy: Run was already called")
	}
	p.started = true
	p.log = klog.FromContext(ctx).WithName("apiproxy")
	log := p.log
	p.mu.Unlock()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", p.cfg.Listen)
	if err != nil {
		err = fmt.Errorf("apiproxy: listen on %s: %w", p.cfg.Listen, err)
		p.finish(err)
		return err
	}
	log.Info("Local API load balancer listening", "address", ln.Addr().String(), "fallback", p.fallback)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	p.mu.Lock()
	p.addr = ln.Addr()
	p.notifyLocked()
	p.mu.Unlock()

	wg.Go(func() { p.superviseHealth(ctx, &wg) })
	wg.Go(func() {
		<-ctx.Done()
		_ = ln.Close()
	})
	err = p.serve(ctx, ln, &wg)

	cancel()
	p.mu.Lock()
	p.closing = true
	var toClose []*proxyConn
	for _, s := range p.servers {
		toClose = append(toClose, s.takeConns()...)
	}
	p.mu.Unlock()
	closeConns(toClose)
	wg.Wait()
	p.finish(err)
	if err != nil {
		return err
	}
	log.Info("Local API load balancer stopped")
	return nil
}

// finish records Run's end for Ready and Addr.
func (p *Proxy) finish(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runErr = err
	p.addr = nil
	for _, s := range p.servers {
		s.stop = nil
	}
	p.notifyLocked()
	close(p.done)
}

// serve accepts until ctx ends (nil) or the listener breaks (an error).
// Other accept errors, such as running out of file descriptors, are waited
// out: a worker must not lose its API access over a passing spike.
func (p *Proxy) serve(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) error {
	log := klog.FromContext(ctx)
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if ctx.Err() != nil {
			if c != nil {
				_ = c.Close()
			}
			return nil
		}
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("apiproxy: listener on %s closed: %w", p.cfg.Listen, err)
		}
		if err != nil {
			log.Error(err, "Accepting a connection; retrying", "in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		wg.Go(func() { p.handle(ctx, c) })
	}
}

// handle dials an apiserver for client c, in candidates order, and copies
// bytes both ways. With no server reachable it closes c, so the client
// retries at once instead of hanging.
func (p *Proxy) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	log := klog.FromContext(ctx)
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	cands := p.candidates()
	for i, s := range cands {
		up, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.dialFailed(s, err, i == 0)
			continue
		}
		pc := &proxyConn{client: c, upstream: up}
		if !p.register(s, pc) {
			_ = up.Close()
			if ctx.Err() != nil {
				return
			}
			continue
		}
		pipe(c, up)
		p.unregister(s, pc)
		return
	}
	log.V(2).Info("No apiserver reachable; closing the client connection", "client", c.RemoteAddr().String(), "tried", len(cands))
}

// dialFailed demotes s until its next passed check; first says s was the
// first choice, so the next connection starts at another unusable server.
func (p *Proxy) dialFailed(s *server, err error, first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.servers[s.addr] != s {
		return
	}
	if !s.dialFailed && s.healthy {
		p.log.Info("Dialing a healthy apiserver failed; using another", "server", s.addr, "err", err)
	}
	s.dialFailed = true
	s.lastErr = err
	if first {
		p.rotate++
	}
	p.pickCurrentLocked()
	p.notifyLocked()
}

// register records pc under s. It fails when s was removed while dialing or
// Run is stopping, so no connection escapes the closing in SetServers, report
// or Run.
func (p *Proxy) register(s *server, pc *proxyConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing || p.servers[s.addr] != s {
		return false
	}
	s.dialFailed = false
	s.conns[pc] = struct{}{}
	return true
}

func (p *Proxy) unregister(s *server, pc *proxyConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(s.conns, pc)
}

// pipe copies a→b and b→a. An EOF from one side is passed on as a
// half-close, so a client that shuts down its write side still gets the
// rest of the answer; an error on either side ends both.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { copyHalf(b, a) })
	copyHalf(a, b)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
}

type closeWriter interface{ CloseWrite() error }

func copyHalf(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		_ = src.Close()
		return
	}
	if cw, ok := dst.(closeWriter); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	_ = dst.Close()
}

// superviseHealth runs one health loop per server and starts loops for
// servers SetServers adds; SetServers stops the loops of removed ones.
func (p *Proxy) superviseHealth(ctx context.Context, wg *sync.WaitGroup) {
	for {
		p.mu.Lock()
		for _, s := range p.servers {
			if s.stop != nil {
				continue
			}
			hctx, stop := context.WithCancel(ctx)
			s.stop = stop
			wg.Go(func() {
				defer stop()
				p.healthLoop(hctx, s)
			})
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
	}
}
