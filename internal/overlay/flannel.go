// Package overlay gives a kubeseed node the cluster pod network across
// nodes: flannel's VXLAN backend over the node's spec.podCIDR.
package overlay

// Blank imports pin the flannel sub-packages kubeseed builds against; the
// module root is flanneld's main and pulls in the Tencent SDK the proxy
// refuses.
import (
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan"
	_ "github.com/flannel-io/flannel/pkg/subnet/kube"
	_ "github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
)
