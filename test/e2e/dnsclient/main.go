// Command dnsclient resolves names from inside a pod for the end-to-end
// tests and the benchmark. busybox-static's nslookup goes through glibc's
// NSS, which a static binary cannot load in a bare container; Go's resolver
// reads the pod's /etc/resolv.conf (search list, ndots) itself.
//
//	dnsclient NAME              print NAME's addresses, one per line, sorted
//	dnsclient -bench N NAME     resolve NAME N times, print p50 and p99 in µs
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"time"
)

func main() {
	bench := flag.Int("bench", 0, "resolve the name this many times and print latency percentiles")
	timeout := flag.Duration("timeout", 5*time.Second, "per-lookup timeout")
	flag.Parse()
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
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("p50_us=%d p99_us=%d n=%d\n", pct(0.50).Microseconds(), pct(0.99).Microseconds(), len(lat))
}
