package defaults

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"text/template"

	"github.com/kubeseed/kubeseed/internal/datadir"
)

func TestHostNamesFor(t *testing.T) {
	def := HostNamesFor(datadir.Layout{Root: datadir.Default})
	if def != (HostNames{CgroupRoot: "/kubeseed", Network: "kubeseed", Bridge: "cni-kubeseed0", PodLogsDir: datadir.Default + "/var/log/pods"}) {
		t.Errorf("default data dir: %+v", def)
	}
	a := HostNamesFor(datadir.Layout{Root: "/tmp/ks-1/data"})
	b := HostNamesFor(datadir.Layout{Root: "/tmp/ks-2/data"})
	if a.CgroupRoot == b.CgroupRoot || a.Network == b.Network || a.PodLogsDir == b.PodLogsDir ||
		a.CgroupRoot == def.CgroupRoot || a.Network == def.Network || a.PodLogsDir == def.PodLogsDir {
		t.Errorf("two data dirs share names: %+v %+v", a, b)
	}
	// One bridge name: a stale bridge of another name would keep a second
	// route to the pod network.
	if a.Bridge != def.Bridge || b.Bridge != def.Bridge {
		t.Errorf("bridges %s %s, want %s", a.Bridge, b.Bridge, def.Bridge)
	}
	if a != HostNamesFor(datadir.Layout{Root: "/tmp/ks-1/data"}) {
		t.Error("names are not stable for one data dir")
	}
	for _, n := range []HostNames{def, a, b} {
		// Linux interface names have at most 15 bytes; the "cni" prefix
		// keeps the bridge out of the certificates' host IPs.
		if len(n.Bridge) > 15 || !strings.HasPrefix(n.Bridge, "cni") {
			t.Errorf("bridge %q", n.Bridge)
		}
		if !strings.HasPrefix(n.CgroupRoot, "/kubeseed") || !strings.HasPrefix(n.Network, "kubeseed") {
			t.Errorf("names %+v", n)
		}
	}
}

func TestCNITemplateUsesHostNames(t *testing.T) {
	l := datadir.Layout{Root: "/tmp/ks-1/data"}
	var conf struct {
		Name    string
		Plugins []struct {
			Type, Bridge string
			IPMasq       bool `json:"ipMasq"`
			MTU          int  `json:"mtu"`
			IPAM         struct {
				DataDir string
				Ranges  [][]struct{ Subnet string }
			} `json:"ipam"`
		}
	}
	// containerd renders it as a Go template; kubeseed reads names from it
	// unrendered, so it must be JSON both ways.
	if err := json.Unmarshal(CNITemplate(l, 1400), &conf); err != nil {
		t.Fatalf("unrendered template: %v", err)
	}
	tmpl, err := template.New("cni").Parse(string(CNITemplate(l, 1400)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, struct{ PodCIDR string }{"10.1.7.0/24"}); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &conf); err != nil {
		t.Fatalf("rendered template: %v", err)
	}
	if got := conf.Plugins[0].IPAM.Ranges[0][0].Subnet; got != "10.1.7.0/24" {
		t.Errorf("rendered subnet %q, want the node's range", got)
	}
	// The overlay masquerades what leaves the cluster; the bridge must not
	// hide pod addresses from other nodes' pods.
	if conf.Plugins[0].IPMasq || conf.Plugins[0].MTU != 1400 {
		t.Errorf("bridge ipMasq %v mtu %d, want false and the given 1400", conf.Plugins[0].IPMasq, conf.Plugins[0].MTU)
	}
	n := HostNamesFor(l)
	if conf.Name != n.Network || len(conf.Plugins) == 0 || conf.Plugins[0].Bridge != n.Bridge {
		t.Errorf("CNI config %+v, want network %s bridge %s", conf, n.Network, n.Bridge)
	}
	if !strings.HasPrefix(conf.Plugins[0].IPAM.DataDir, l.Root+"/") {
		t.Errorf("IPAM state %q is outside the data dir", conf.Plugins[0].IPAM.DataDir)
	}
	if !strings.Contains(string(KubeletConfig(l, 0)), "cgroupRoot: "+n.CgroupRoot+"\n") {
		t.Errorf("kubelet.yaml lacks cgroupRoot %s", n.CgroupRoot)
	}
}
