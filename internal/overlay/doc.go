// Package overlay gives a kubeseed node the cluster pod network across
// nodes: flannel v0.28.10's VXLAN backend, kube subnet manager and iptables
// traffic manager, run in-process over the node's spec.podCIDR, plus a
// filter so only cluster nodes may send to the VXLAN port.
//
// What it changes outside its own memory, for whoever wires it in:
//
//   - Environment: NODE_NAME is set while flannel's subnet manager is built
//     (flannel reads the node name nowhere else), then unset. A NODE_NAME
//     already set to another node's name is an error. Two Overlays for
//     different nodes must not start concurrently in one process.
//   - klog: flannel logs through the global klog. One path in flannel calls
//     klog.Fatalf (its netlink link subscription at start); Run opens one
//     first and fails with an error instead, leaving a narrow window.
//   - Files: a net-conf in os.TempDir(), removed as soon as flannel read it.
//     Nothing else: no /run/flannel/subnet.env, no CNI files.
//   - Links: flannel.<VNI> (vxlan, UDP Port, local NodeIP, no learning, MTU
//     host−50), with <podCIDR network>/32 on it and accept_ra=0; per peer a
//     route <podCIDR> via <its network address> onlink, a permanent ARP and
//     an FDB entry.
//   - iptables (the `iptables` in PATH; both flannel and the filter shell
//     out to it): nat FLANNEL-POSTRTG (jumped to from POSTROUTING), filter
//     FLANNEL-FWD (from FORWARD), re-checked every 30 s; INPUT rule 1
//     `-p udp --dport <Port> -m set ! --match-set kubeseed-nodes src -j DROP`.
//   - ipset kubeseed-nodes (hash:ip, inet), through netlink: no ipset
//     binary needed.
//   - The Node: flannel.alpha.coreos.com/* annotations, patched through the
//     nodes/status subresource.
//
// All of it outlives Run on purpose; CleanUp removes it for `kubeseed
// reset`.
//
// The kernel needs vxlan, ip_set, ip_set_hash_ip, xt_set, xt_comment and
// NAT/MASQUERADE.
//
// The kubeconfig's identity (the kubelet's, system:node:<name>) needs get,
// list and watch on all nodes and patch on its own nodes/status. The Node
// authorizer grants the patch (NodeRestriction admits annotation changes on
// the node's own object) but, in v1.37, reads of its own Node only: under
// Node,RBAC a ClusterRole with get/list/watch on nodes must be bound to the
// node (or group system:nodes). Run checks this first and fails naming it.
package overlay
