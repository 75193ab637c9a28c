package defaults

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/services"
)

// Node component args files.
const (
	KubeletComponent    = "kubelet"
	KubeProxyComponent  = "kube-proxy"
	ContainerdComponent = "containerd"
	// KubeletConfigFile is the KubeletConfiguration under args/.
	KubeletConfigFile = "kubelet.yaml"
	// ContainerdConfigTemplate is rendered to run/containerd.toml at every
	// start, with the host adaptations filled in.
	ContainerdConfigTemplate = "containerd-template.toml"
	// CNITemplateFile is the pod network's CNI config under args/, a Go
	// template: containerd fills in {{.PodCIDR}}, this node's range
	// (Node.spec.podCIDR, set by the controller manager), and writes the
	// result to run/CNIConfDir.
	CNITemplateFile = "cni-network.template"
	// CNIConfDir, under run/, holds the rendered config. It is emptied at
	// a start after the template changed: containerd renders only into an
	// empty directory.
	CNIConfDir = "cni-network"
	// LegacyCNIConfDir, under args/, held a static config for the whole
	// cluster range in older data dirs.
	LegacyCNIConfDir = "cni-network"
	// ClusterDNS is the kube-dns Service IP, the 10th of ServiceCIDR.
	ClusterDNS    = "10.152.183.10"
	ClusterDomain = "cluster.local"
	// PauseImage names the built-in sandbox image; it is imported at start,
	// never pulled.
	PauseImage = "registry.k8s.io/pause:3.10"
)

// HostNames name what a node makes outside its data dir: the kubelet's
// cgroup parent for every pod, and the pod network's CNI network (its
// results are cached in the host's /var/lib/cni) and bridge. Reset finds
// them from the files that hold them.
type HostNames struct {
	CgroupRoot string
	Network    string
	Bridge     string
	// PodLogsDir is the kubelet's podLogsDir. Its garbage collection
	// deletes the log directories of pods it does not know, so each node
	// needs its own.
	PodLogsDir string
}

// HostNamesFor gives a node on the default data dir the plain names, and a
// node on any other data dir its own cgroup root and CNI network name, so
// nodes side by side on one host (tests, or one network namespace each)
// never share or remove each other's cgroups or cached CNI results. The
// bridge keeps one name: it lives in the node's network namespace, and a
// bridge left by a deleted data dir would otherwise hold the pod network's
// route beside the new one and cut pods off.
func HostNamesFor(l datadir.Layout) HostNames {
	if l.Root == datadir.Default {
		return HostNames{CgroupRoot: "/kubeseed", Network: "kubeseed", Bridge: "cni-kubeseed0", PodLogsDir: PodLogsDir(l)}
	}
	sum := sha256.Sum256([]byte(l.Root))
	id := hex.EncodeToString(sum[:4])
	return HostNames{CgroupRoot: "/kubeseed-" + id, Network: "kubeseed-" + id, Bridge: "cni-kubeseed0", PodLogsDir: PodLogsDir(l)}
}

// PodLogsDirSetting is kubelet.yaml's podLogsDir for a new node.
const PodLogsDirSetting = "${DATA_DIR}/var/log/pods"

// PodLogsDir is where a new node's kubelet keeps pod logs: in the data dir.
func PodLogsDir(l datadir.Layout) string {
	return filepath.Join(l.VarDir(), "log", "pods")
}

func hostPort(name string, offset int) string {
	s := services.MustLookup(name)
	return s.Bind.Address() + ":" + strconv.Itoa(s.Port+offset)
}

// KubeletArgs renders args/kubelet: node-level flags; everything else is
// in args/kubelet.yaml, as upstream deprecates config flags.
func KubeletArgs(l datadir.Layout, nodeName string) *args.File {
	return newArgs(l, KubeletComponent, "Flags for the kubelet (upstream names); its configuration is in kubelet.yaml.", [][2]string{
		{"config", "${DATA_DIR}/args/" + KubeletConfigFile},
		{"kubeconfig", "${DATA_DIR}/credentials/kubelet.config"},
		{"hostname-override", nodeName},
		{"root-dir", "${DATA_DIR}/var/kubelet"},
		{"cert-dir", "${DATA_DIR}/var/kubelet/pki"},
	})
}

// KubeletConfig renders args/kubelet.yaml.
func KubeletConfig(l datadir.Layout, portOffset int) []byte {
	return KubeletConfigFor(l, portOffset, ClusterDNS, ClusterDomain)
}

// KubeletConfigFor renders args/kubelet.yaml for a cluster's DNS.
func KubeletConfigFor(l datadir.Layout, portOffset int, clusterDNS, clusterDomain string) []byte {
	kubelet := services.MustLookup("kubelet")
	return []byte(fmt.Sprintf(`# KubeletConfiguration for the in-process kubelet. ${DATA_DIR} is the data dir.
# cgroupDriver and failCgroupV1 are adapted to the host at every start.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: %d
healthzBindAddress: %s
healthzPort: %d
tlsCertFile: ${DATA_DIR}/certs/kubelet-serving.crt
tlsPrivateKeyFile: ${DATA_DIR}/certs/kubelet-serving.key
tlsMinVersion: %s
tlsCipherSuites: [%s]
# The whole process's pprof and log-level endpoints: off.
enableProfilingHandler: false
enableDebugFlagsHandler: false
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
    # A removed token stops working on this port within seconds.
    cacheTTL: 10s
  x509:
    clientCAFile: ${DATA_DIR}/certs/ca.crt
authorization:
  mode: Webhook
  webhook:
    # enable rbac takes effect on this port within seconds.
    cacheAuthorizedTTL: 10s
    cacheUnauthorizedTTL: 10s
containerRuntimeEndpoint: unix://${DATA_DIR}/run/containerd.sock
cgroupRoot: %s
podLogsDir: %s
clusterDNS:
- %s
clusterDomain: %s
failSwapOn: false
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
`, kubelet.Bind.Address(), kubelet.Port+portOffset,
		services.MustLookup("kubelet-readonly").Port+portOffset,
		services.MustLookup("kubelet-healthz").Bind.Address(), services.MustLookup("kubelet-healthz").Port+portOffset,
		TLSMinVersion, strings.Join(TLSCipherSuites, ", "),
		HostNamesFor(l).CgroupRoot, PodLogsDirSetting, clusterDNS, clusterDomain))
}

// KubeProxyArgs renders args/kube-proxy.
func KubeProxyArgs(l datadir.Layout, nodeName string, portOffset int) *args.File {
	return KubeProxyArgsFor(l, nodeName, portOffset, ClusterCIDR)
}

// KubeProxyArgsFor renders args/kube-proxy for a cluster's pod range.
func KubeProxyArgsFor(l datadir.Layout, nodeName string, portOffset int, clusterCIDR string) *args.File {
	return newArgs(l, KubeProxyComponent, "Flags for kube-proxy (upstream names).", [][2]string{
		{"kubeconfig", "${DATA_DIR}/credentials/proxy.config"},
		{"hostname-override", nodeName},
		{"proxy-mode", "iptables"},
		{"cluster-cidr", clusterCIDR},
		{"metrics-bind-address", hostPort("kube-proxy-metrics", portOffset)},
		{"healthz-bind-address", hostPort("kube-proxy-healthz", portOffset)},
	})
}

// ContainerdArgs renders args/containerd: how kubeseed runs containerd.
func ContainerdArgs(l datadir.Layout, portOffset int) *args.File {
	return newArgs(l, ContainerdComponent, "How kubeseed runs containerd; its configuration is rendered from containerd-template.toml.", [][2]string{
		{"config-template", "${DATA_DIR}/args/" + ContainerdConfigTemplate},
		{"address", "${DATA_DIR}/run/containerd.sock"},
		{"root", "${DATA_DIR}/var/containerd"},
		{"state", "${DATA_DIR}/run/containerd"},
		{"metrics-address", hostPort("containerd-metrics", portOffset)},
		{"stream-address", hostPort("containerd-stream", portOffset)},
		{"cni-bin-dir", "/usr/lib/cni"},
		{"log-level", "warn"},
	})
}

// CNITemplate is the pod network: a bridge with host-local IPAM over the
// node's own range (its allocations kept in the data dir) and portmap for
// hostPort. forceAddress lets the bridge move to a new range. The overlay
// masquerades what leaves the cluster range, so the bridge does not (it
// would hide pod addresses from pods on other nodes), and pods send no more
// than the VXLAN device carries (mtu, the host's less the encapsulation).
func CNITemplate(l datadir.Layout, mtu int) []byte {
	names := HostNamesFor(l)
	return []byte(fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "%s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "%s",
      "isGateway": true,
      "forceAddress": true,
      "ipMasq": false,
      "mtu": %d,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "%s",
        "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
`, names.Network, names.Bridge, mtu, filepath.Join(l.VarDir(), "cni", "networks")))
}

// ContainerdConfig renders args/containerd-template.toml. kubeseed fills
// in the ${...} references at every start: paths from args/containerd and
// the host adaptations (${SYSTEMD_CGROUP}, ${RESTRICT_OOM_SCORE_ADJ}).
func ContainerdConfig() []byte {
	return []byte(`# containerd configuration template. kubeseed renders it to run/containerd.toml at
# every start. ${DATA_DIR} is the data dir; ${ROOT}, ${STATE}, ${ADDRESS} and
# ${METRICS_ADDRESS}, ${STREAM_HOST}, ${STREAM_PORT} and ${CNI_BIN_DIR} come from args/containerd; ${SYSTEMD_CGROUP} and
# ${RESTRICT_OOM_SCORE_ADJ} are adapted to the host (see kubeseed status);
# ${SHIM_SOCKET_DIR} is a short directory under /run (containerd's limit).
version = 4
root = "${ROOT}"
state = "${STATE}"

[plugins]
  [plugins."io.containerd.server.v1.grpc"]
    address = "${ADDRESS}"
  [plugins."io.containerd.server.v1.ttrpc"]
    address = "${ADDRESS}.ttrpc"
  [plugins."io.containerd.server.v1.metrics"]
    address = "${METRICS_ADDRESS}"

  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = "` + PauseImage + `"

  [plugins."io.containerd.cri.v1.runtime"]
    restrict_oom_score_adj = ${RESTRICT_OOM_SCORE_ADJ}
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = ["${STATE}/cdi"]
    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
          SystemdCgroup = ${SYSTEMD_CGROUP}
          Root = "${STATE}/runc"
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = ["${CNI_BIN_DIR}"]
      conf_dir = "${DATA_DIR}/run/` + CNIConfDir + `"
      conf_template = "${DATA_DIR}/args/` + CNITemplateFile + `"

  [plugins."io.containerd.grpc.v1.cri"]
    # Streaming (exec, attach, port-forward) is proxied by the kubelet.
    stream_server_address = "${STREAM_HOST}"
    stream_server_port = "${STREAM_PORT}"

  [plugins."io.containerd.internal.v1.opt"]
    path = "${ROOT}/opt"

  [plugins."io.containerd.image-verifier.v1.bindir"]
    bin_dir = "${ROOT}/opt/image-verifier/bin"

  [plugins."io.containerd.nri.v1.nri"]
    disable = true
    socket_path = "${STATE}/nri/nri.sock"

  [plugins."io.containerd.shim.v1.manager"]
    socket_dir = "${SHIM_SOCKET_DIR}"
`)
}

// APIServerProxyComponent is a worker's load balancer's args file.
const APIServerProxyComponent = "apiserver-proxy"

// OverlayComponent is the pod network across nodes: flannel's VXLAN
// backend, in-process, with kubeseed's filter on its UDP port.
const OverlayComponent = "overlay"

// VXLANVNI is the overlay's VXLAN network identifier (flannel's default).
const VXLANVNI = 1

// OverlayArgs renders args/overlay. The VXLAN port takes no test offset:
// every node of a cluster sends to the same port, and one node per network
// namespace means no two nodes share it.
func OverlayArgs(l datadir.Layout, clusterCIDR string) *args.File {
	f := newArgs(l, OverlayComponent, "Flags for the pod network across nodes (flannel's VXLAN backend, in-process). Every node of a cluster needs the same --port and --vni.", [][2]string{
		{"kubeconfig", "${DATA_DIR}/credentials/kubelet.config"},
		{"cluster-cidr", clusterCIDR},
		{"port", strconv.Itoa(services.MustLookup("vxlan").Port)},
		{"vni", strconv.Itoa(VXLANVNI)},
	})
	f.AddComment("--node-ip, the address other nodes send to, defaults to the Node's InternalIP.")
	return f
}

// APIServerProxyArgs renders a worker's args/apiserver-proxy.
func APIServerProxyArgs(l datadir.Layout, portOffset int) *args.File {
	return newArgs(l, APIServerProxyComponent, "Flags for this worker's load balancer to the cluster's apiservers (kubelet and kube-proxy use it).", [][2]string{
		{"listen", hostPort("apiserver-proxy", portOffset)},
		{"ca-file", "${DATA_DIR}/certs/ca.crt"},
		{"state-file", "${DATA_DIR}/var/apiserver-proxy.json"},
		{"health-interval", "5s"},
	})
}

// WorkerArgs renders every args file of a worker.
func WorkerArgs(l datadir.Layout, nodeName, nodeIP string, portOffset int, clusterCIDR string) []*args.File {
	kubelet := KubeletArgs(l, nodeName)
	kubelet.Set("node-ip", nodeIP)
	return []*args.File{
		ContainerdArgs(l, portOffset),
		APIServerProxyArgs(l, portOffset),
		kubelet,
		KubeProxyArgsFor(l, nodeName, portOffset, clusterCIDR),
		OverlayArgs(l, clusterCIDR),
	}
}

// WorkerConfigFiles are a worker's files beside its args files, by path.
func WorkerConfigFiles(l datadir.Layout, portOffset, podMTU int, clusterDNS, clusterDomain string) map[string][]byte {
	return map[string][]byte{
		l.Args(KubeletConfigFile):        KubeletConfigFor(l, portOffset, clusterDNS, clusterDomain),
		l.Args(ContainerdConfigTemplate): ContainerdConfig(),
		l.Args(CNITemplateFile):          CNITemplate(l, podMTU),
	}
}
