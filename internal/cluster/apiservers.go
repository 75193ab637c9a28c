package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// APIServers lists the apiservers (host:port) from the kubernetes
// Service's EndpointSlices, which every apiserver keeps current.
func APIServers(ctx context.Context, kube kubernetes.Interface) ([]string, error) {
	list, err := kube.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
	if err != nil {
		return nil, fmt.Errorf("list the apiservers: %w", err)
	}
	var out []string
	for _, s := range list.Items {
		for _, port := range s.Ports {
			if port.Port == nil {
				continue
			}
			for _, e := range s.Endpoints {
				for _, a := range e.Addresses {
					out = append(out, net.JoinHostPort(a, strconv.Itoa(int(*port.Port))))
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the kubernetes Service has no endpoints yet: wait until the control plane is ready")
	}
	return out, nil
}
