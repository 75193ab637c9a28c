// Command dnsclient resolves names from inside a pod for the end-to-end
// tests and the benchmark. busybox-static's nslookup goes through glibc's
// NSS, which a static binary cannot load in a bare container; Go's resolver
// reads the pod's /etc/resolv.conf (search list, ndots) itself.
//
//	dnsclient NAME              print NAME's addresses, one per line, sorted
//	dnsclient -bench N NAME     resolve NAME N times, print p50 and p99 in µs
//
// For the pod network benchmark it also measures TCP between pods:
//
//	dnsclient -serve :9000           echo each byte back; discard bulk data
//	dnsclient -rtt N HOST:PORT       N one-byte round trips, print p50 and p99 in µs
//	dnsclient -send MB HOST:PORT     send MB mebibytes, print the rate in Mbit/s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"time"
)

func main() {
	bench := flag.Int("bench", 0, "resolve the name this many times and print latency percentiles")
	timeout := flag.Duration("timeout", 5*time.Second, "per-lookup timeout")
	serve := flag.String("serve", "", "serve the TCP measurements on this address")
	rtt := flag.Int("rtt", 0, "time this many one-byte round trips to HOST:PORT")
	send := flag.Int("send", 0, "send this many MiB to HOST:PORT and print the rate")
	flag.Parse()
	if err := tcpModes(*serve, *rtt, *send, flag.Args()); err != errNoTCPMode {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: dnsclient [-bench N] NAME")
		os.Exit(2)
	}
	name := flag.Arg(0)
	r := &net.Resolver{PreferGo: true}
	lookup := func() ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		return r.LookupHost(ctx, name)
	}
	if *bench == 0 {
		addrs, err := lookup()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sort.Strings(addrs)
		for _, a := range addrs {
			fmt.Println(a)
		}
		return
	}
	lat := make([]time.Duration, 0, *bench)
	for i := 0; i < *bench; i++ {
		start := time.Now()
		if _, err := lookup(); err != nil {
			fmt.Fprintf(os.Stderr, "lookup %d: %v\n", i, err)
			os.Exit(1)
		}
		lat = append(lat, time.Since(start))
	}
	printPercentiles(lat)
}

// printPercentiles prints the p50 and p99 of lat, which it sorts.
func printPercentiles(lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("p50_us=%d p99_us=%d n=%d\n", pct(0.50).Microseconds(), pct(0.99).Microseconds(), len(lat))
}

var errNoTCPMode = errors.New("no TCP mode")

// The first byte of a connection says what it is for.
const (
	modeEcho = 'e'
	modeSink = 's'
)

func tcpModes(serve string, rtt, send int, args []string) error {
	switch {
	case serve != "":
		return serveTCP(serve)
	case rtt == 0 && send == 0:
		return errNoTCPMode
	case len(args) != 1:
		return errors.New("usage: dnsclient -rtt N HOST:PORT | -send MB HOST:PORT")
	}
	conn, err := net.DialTimeout("tcp", args[0], 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if rtt > 0 {
		return roundTrips(conn, rtt)
	}
	return sendBulk(conn, send)
}

func serveTCP(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			mode := make([]byte, 1)
			if _, err := io.ReadFull(c, mode); err != nil {
				return
			}
			if mode[0] == modeSink {
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "%d", n) // the sender's end-of-transfer mark
				return
			}
			_, _ = io.Copy(c, c)
		}()
	}
}

func roundTrips(c net.Conn, n int) error {
	if _, err := c.Write([]byte{modeEcho}); err != nil {
		return err
	}
	b := []byte{0}
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := c.Write(b); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
	}
	printPercentiles(lat)
	return nil
}

// sendBulk sends mib MiB and waits for the server's count, so the rate is
// of bytes received, not of bytes buffered.
func sendBulk(c net.Conn, mib int) error {
	buf := make([]byte, 1<<20)
	start := time.Now()
	if _, err := c.Write([]byte{modeSink}); err != nil {
		return err
	}
	for i := 0; i < mib; i++ {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	if want := fmt.Sprint(mib << 20); string(got) != want {
		return fmt.Errorf("the server received %q bytes, want %s", got, want)
	}
	fmt.Printf("mbit_s=%.0f bytes=%d\n", float64(mib<<20)*8/elapsed.Seconds()/1e6, mib<<20)
	return nil
}
