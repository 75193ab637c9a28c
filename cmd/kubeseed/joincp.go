package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"k8s.io/client-go/util/cert"
	k8sversion "k8s.io/component-base/version"

	"github.com/kubeseed/kubeseed/internal/agent"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/certrenew"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/daemon"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/jointoken"
	"github.com/kubeseed/kubeseed/internal/services"
)

// joinControlPlane joins l as a control plane, then runs it.
func joinControlPlane(ctx context.Context, l datadir.Layout, ja jointoken.JoinAddress, nodeName string, portOffset int, renewal certrenew.Options, progress func(string)) error {
	peerPort := services.MustLookup("etcd-ha").Port + portOffset
	progress("asking the cluster agent at " + ja.Addr + " (its CA must match the hash in the join line)")
	resp, err := agent.NewClient(ja.Addr, ja.CAHash, nil).JoinQueued(ctx, agent.JoinRequest{
		Token: ja.Token.String(), Role: jointoken.ControlPlane, NodeName: nodeName,
		Version: k8sversion.Get().GitVersion, EtcdPeerPort: peerPort,
	}, progress)
	if err != nil {
		return fmt.Errorf("join %s: %w", ja.Addr, err)
	}
	files, err := controlPlaneFiles(resp, ja.CAHash, nodeName, portOffset)
	if err != nil {
		return fmt.Errorf("the cluster agent's answer: %w (nothing was written; the agent removes the etcd learner it added once it stalls, and the token's use comes back when its reservation expires)", err)
	}
	st := cluster.State{Role: cluster.ControlPlane, Agents: []string{ja.Addr}, CAHash: ja.CAHash,
		APIServers: resp.APIServers, NodeIP: resp.NodeIP, TokenID: resp.TokenID, Attempt: resp.Attempt}
	if err := writeJoined(l, st, func() error {
		return bootstrap.WriteControlPlane(ctx, l, files.ControlPlaneFiles, agent.SharedKeys, files.ca)
	}); err != nil {
		return err
	}
	progress(fmt.Sprintf("joined as control plane %s (%s), etcd learner %s; starting the node (etcd catches up, then becomes a voter)", nodeName, resp.NodeIP, resp.ControlPlane.EtcdMemberID))
	begin := time.Now()
	o := daemon.Options{Progress: progress, Renewal: renewal}
	o.Bootstrap.NodeName = nodeName
	o.Bootstrap.PortOffset = portOffset
	o.Ready = func() { progress(fmt.Sprintf("control plane ready in %s", time.Since(begin).Round(time.Millisecond))) }
	if err := daemon.Run(ctx, l, o); err != nil {
		return err
	}
	progress("stopped; start it again with `kubeseed start`")
	return nil
}

type joinedControlPlane struct {
	bootstrap.ControlPlaneFiles
	ca *x509.Certificate
}

// controlPlaneFiles checks the agent's answer against the pin, and that the
// cluster runs the network a new control plane renders.
func controlPlaneFiles(resp *agent.JoinResponse, pin, nodeName string, portOffset int) (joinedControlPlane, error) {
	var out joinedControlPlane
	cas, err := cert.ParseCertsPEM(resp.CA)
	if err != nil {
		return out, fmt.Errorf("CA: %w", err)
	}
	if got := jointoken.CAHash(cas[0]); got != pin {
		return out, fmt.Errorf("its CA's hash %s is not the join line's %s", got, pin)
	}
	cp := resp.ControlPlane
	if cp == nil {
		return out, fmt.Errorf("it holds nothing for a control plane")
	}
	for what, pair := range map[string][2]string{
		"pod range":     {resp.Cluster.ClusterCIDR, defaults.ClusterCIDR},
		"Service range": {resp.Cluster.ServiceCIDR, defaults.ServiceCIDR},
		"DNS IP":        {resp.Cluster.ClusterDNS, defaults.ClusterDNS},
		"DNS domain":    {resp.Cluster.ClusterDomain, defaults.ClusterDomain},
	} {
		if pair[0] != pair[1] {
			return out, fmt.Errorf("the cluster's %s is %s, not kubeseed's default %s: a control plane joins only a cluster on the default network for now; join this node with --worker", what, pair[0], pair[1])
		}
	}
	out.ca = cas[0]
	out.ControlPlaneFiles = bootstrap.ControlPlaneFiles{
		NodeName: nodeName, PortOffset: portOffset,
		PeerURL:           defaults.EtcdHAPeerURL(resp.NodeIP, portOffset),
		InitialCluster:    cp.EtcdInitialCluster,
		Keys:              cp.Keys,
		AuthorizationMode: authz.Mode(cp.AuthorizationMode),
	}
	return out, nil
}
