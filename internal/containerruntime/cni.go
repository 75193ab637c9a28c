package containerruntime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"text/template"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// renderedCNIFile is the file containerd renders the CNI template to.
const renderedCNIFile = "10-containerd-net.conflist"

// cniTemplateRecord, under run/, is the digest of the template the
// rendered config came from.
const cniTemplateRecord = "cni-network.template.sha256"

// keepCNIConfig keeps the config rendered by the last run while the
// template is unchanged, so a restarted node's pod network is ready at
// once (containerd renders only once the kubelet has its pod range, and
// the kubelet reports the Node Ready only on its next status update).
// An edited template empties the directory: containerd renders only into
// an empty one.
func keepCNIConfig(l datadir.Layout) error {
	tmpl, err := os.ReadFile(l.Args(defaults.CNITemplateFile))
	if err != nil {
		return fmt.Errorf("read the CNI template: %w", err)
	}
	sum := sha256.Sum256(tmpl)
	want := hex.EncodeToString(sum[:])
	if got, err := os.ReadFile(l.Run(cniTemplateRecord)); err == nil && string(got) == want {
		return nil
	}
	if err := os.RemoveAll(l.Run(defaults.CNIConfDir)); err != nil {
		return fmt.Errorf("empty the rendered CNI config: %w", err)
	}
	return fsutil.WriteFileAtomic(l.Run(cniTemplateRecord), []byte(want), 0o644)
}

// EnsureCNIRange renders the CNI template for podCIDR if the config in
// place is for another range: a Node deleted and registered again may get
// another one, and containerd would keep the config it has.
func EnsureCNIRange(l datadir.Layout, podCIDR *net.IPNet) (bool, error) {
	path := filepath.Join(l.Run(defaults.CNIConfDir), renderedCNIFile)
	cur, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return false, nil // containerd renders it
	}
	if err != nil {
		return false, err
	}
	var conf struct {
		Plugins []struct {
			IPAM struct {
				Ranges [][]struct{ Subnet string } `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if json.Unmarshal(cur, &conf) != nil || len(conf.Plugins) == 0 || len(conf.Plugins[0].IPAM.Ranges) == 0 ||
		len(conf.Plugins[0].IPAM.Ranges[0]) == 0 || conf.Plugins[0].IPAM.Ranges[0][0].Subnet == podCIDR.String() {
		return false, nil // the user's own shape, or the right range
	}
	t, err := template.ParseFiles(l.Args(defaults.CNITemplateFile))
	if err != nil {
		return false, fmt.Errorf("parse the CNI template: %w", err)
	}
	var b bytes.Buffer
	// The fields containerd's conf_template offers.
	if err := t.Execute(&b, struct {
		PodCIDR       string
		PodCIDRRanges []string
		Routes        []string
	}{podCIDR.String(), []string{podCIDR.String()}, []string{"0.0.0.0/0"}}); err != nil {
		return false, fmt.Errorf("render the CNI template: %w", err)
	}
	return true, fsutil.WriteFileAtomic(path, b.Bytes(), 0o644)
}
