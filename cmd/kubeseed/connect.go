package main

import (
	"context"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/spf13/cobra"

	"github.com/kubeseed/kubeseed/internal/containerruntime"
)

// connect reaches the node's containerd, or says how to start it.
func connect(cmd *cobra.Command, g *globalOptions) (*containerd.Client, error) {
	l, err := g.layout()
	if err != nil {
		return nil, err
	}
	o, err := containerruntime.LoadOptions(l)
	if err != nil {
		return nil, fmt.Errorf("%w (has this node been started? `kubeseed start`)", err)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	client, err := containerruntime.Connect(ctx, o.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: is the node running? (`kubeseed status`)", err)
	}
	return client, nil
}
