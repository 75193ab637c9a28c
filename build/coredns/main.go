// Command coredns is CoreDNS built from source with only the plugins the
// kubeseed DNS addon's Corefile uses. Upstream's main imports all ~60
// plugins, including cloud SDKs (Azure, Route53, Cloud DNS) that cost tens
// of MiB in every kubeseed binary and minutes of cold build; the server,
// plugin code and Corefile syntax are upstream's, unchanged.
//
// It is its own module so CoreDNS's dependency graph stays out of
// kubeseed's go.mod.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives are the plugins above in upstream's execution order
// (core/dnsserver/zdirectives.go); a Corefile naming any other plugin fails
// to load with "unknown directive".
var directives = []string{
	"reload",
	"ready",
	"health",
	"prometheus",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"kubernetes",
	"loop",
	"forward",
}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
