// Package dns is the cluster DNS addon: CoreDNS, built from source into
// kubeseed, deployed from the manifests in coredns.yaml. It is on by
// default; `kubeseed disable dns` and `kubeseed enable dns` switch it, and
// the choice is kept in config/dns in the data dir.
package dns

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/template"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/kubeseed/kubeseed/internal/netconf"
)

// Version is the CoreDNS release build/coredns/go.mod pins; a unit test
// keeps the two in step.
const Version = "v1.15.0"

// Image names the built-in CoreDNS image; it is imported at start, never
// pulled.
const Image = "kubeseed.local/coredns:" + Version

// Namespace and Deployment name the addon's workload.
const (
	Namespace  = "kube-system"
	Deployment = "coredns"
)

// FallbackUpstreams are used when the host has no resolver a pod can reach.
var FallbackUpstreams = []string{"8.8.8.8", "1.1.1.1"}

//go:embed coredns.yaml
var manifest string

// Params fill the manifest's template.
type Params struct {
	Domain    string
	ServiceIP string
	Upstreams []string
	Image     string
}

// ParamsFor are the node's values, as its args files set them, with the
// given forwarders.
func ParamsFor(n netconf.Network, upstreams []string) Params {
	return Params{Domain: n.ClusterDomain, ServiceIP: n.ClusterDNS.String(), Upstreams: upstreams, Image: Image}
}

// Render returns the addon's objects.
func Render(p Params) ([]*unstructured.Unstructured, error) {
	if len(p.Upstreams) == 0 {
		return nil, errors.New("render the DNS addon: no upstream resolvers")
	}
	t, err := template.New("coredns.yaml").Option("missingkey=error").Parse(manifest)
	if err != nil {
		return nil, fmt.Errorf("parse the embedded coredns.yaml: %w", err)
	}
	var buf bytes.Buffer
	data := map[string]string{"Domain": p.Domain, "ServiceIP": p.ServiceIP, "Upstreams": strings.Join(p.Upstreams, " "), "Image": p.Image}
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render the embedded coredns.yaml: %w", err)
	}
	dec := utilyaml.NewYAMLReader(bufio.NewReader(&buf))
	var objs []*unstructured.Unstructured
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the rendered coredns.yaml: %w", err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("the rendered coredns.yaml: %w", err)
		}
		if string(bytes.TrimSpace(js)) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("the rendered coredns.yaml: %w", err)
		}
		if _, err := resourceFor(u); err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// resources maps the kinds coredns.yaml uses to their API resources, so no
// discovery round trip is needed.
var resources = map[schema.GroupVersionKind]string{
	{Version: "v1", Kind: "ServiceAccount"}:                                         "serviceaccounts",
	{Version: "v1", Kind: "ConfigMap"}:                                              "configmaps",
	{Version: "v1", Kind: "Service"}:                                                "services",
	{Group: "apps", Version: "v1", Kind: "Deployment"}:                              "deployments",
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}:        "clusterroles",
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}: "clusterrolebindings",
}

func resourceFor(u *unstructured.Unstructured) (schema.GroupVersionResource, error) {
	gvk := u.GroupVersionKind()
	r, ok := resources[gvk]
	if !ok {
		return schema.GroupVersionResource{}, fmt.Errorf("coredns.yaml: kind %s is not one the DNS addon knows how to apply", gvk)
	}
	return gvk.GroupVersion().WithResource(r), nil
}

func client(dc dynamic.Interface, u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvr, err := resourceFor(u)
	if err != nil {
		return nil, err
	}
	if ns := u.GetNamespace(); ns != "" {
		return dc.Resource(gvr).Namespace(ns), nil
	}
	return dc.Resource(gvr), nil
}

// fieldManager owns the applied objects.
const fieldManager = "kubeseed"

// Apply creates or updates every object (server-side apply).
func Apply(ctx context.Context, dc dynamic.Interface, objs []*unstructured.Unstructured) error {
	for _, u := range objs {
		rc, err := client(dc, u)
		if err != nil {
			return err
		}
		js, err := u.MarshalJSON()
		if err != nil {
			return err
		}
		opts := metav1.PatchOptions{FieldManager: fieldManager, Force: ptr(true)}
		_, err = rc.Patch(ctx, u.GetName(), types.ApplyPatchType, js, opts)
		if apierrors.IsInvalid(err) && u.GetKind() == "Service" {
			// clusterIP is immutable: after clusterDNS was edited in
			// kubelet.yaml, the Service moves by being made anew.
			klog.FromContext(ctx).Info("Re-creating the DNS Service at its new IP (clusterDNS changed); pods started earlier keep the old address until they restart", "service", qualified(u))
			if err = rc.Delete(ctx, u.GetName(), metav1.DeleteOptions{}); err == nil || apierrors.IsNotFound(err) {
				_, err = rc.Patch(ctx, u.GetName(), types.ApplyPatchType, js, opts)
			}
		}
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), qualified(u), err)
		}
	}
	return nil
}

// Delete removes every object; objects already gone are fine. Pods of the
// Deployment go in the background.
func Delete(ctx context.Context, dc dynamic.Interface, objs []*unstructured.Unstructured) error {
	policy := metav1.DeletePropagationBackground
	for i := len(objs) - 1; i >= 0; i-- {
		u := objs[i]
		rc, err := client(dc, u)
		if err != nil {
			return err
		}
		err = rc.Delete(ctx, u.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s %s: %w", u.GetKind(), qualified(u), err)
		}
	}
	return nil
}

func qualified(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}

func ptr[T any](v T) *T { return &v }

// Readiness is the Deployment's state.
type Readiness struct {
	Exists bool
	Ready  bool
	Detail string // e.g. "1/1 ready"
}

// DeploymentReadiness reads the CoreDNS Deployment: Ready when its current
// generation is rolled out and every replica is ready.
func DeploymentReadiness(ctx context.Context, cs kubernetes.Interface) (Readiness, error) {
	d, err := cs.AppsV1().Deployments(Namespace).Get(ctx, Deployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Readiness{Detail: "no Deployment " + Namespace + "/" + Deployment}, nil
	}
	if err != nil {
		return Readiness{}, fmt.Errorf("get Deployment %s/%s: %w", Namespace, Deployment, err)
	}
	return readiness(d), nil
}

func readiness(d *appsv1.Deployment) Readiness {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	r := Readiness{Exists: true, Detail: fmt.Sprintf("%d/%d ready", s.ReadyReplicas, want)}
	r.Ready = s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.ReadyReplicas == want && s.Replicas == want
	return r
}

// WaitReady polls the Deployment until it is Ready, telling progress every
// few seconds what it waits for.
func WaitReady(ctx context.Context, cs kubernetes.Interface, progress func(string)) error {
	start := time.Now()
	last := start
	var detail string
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		r, err := DeploymentReadiness(ctx, cs)
		if err == nil && r.Ready {
			return true, nil
		}
		detail = r.Detail
		if err != nil {
			detail = err.Error()
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			progress(fmt.Sprintf("waiting for Deployment %s/%s to be Ready (%s, %s)", Namespace, Deployment, detail, time.Since(start).Round(time.Second)))
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%w: Deployment %s/%s not Ready (%s); see `kubeseed kubectl -n %s describe deployment %s` and its pods' logs", err, Namespace, Deployment, detail, Namespace, Deployment)
	}
	return nil
}

// WaitGone polls until the Deployment no longer exists.
func WaitGone(ctx context.Context, cs kubernetes.Interface) error {
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := cs.AppsV1().Deployments(Namespace).Get(ctx, Deployment, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("%w: Deployment %s/%s still exists", err, Namespace, Deployment)
	}
	return nil
}

// ParseUpstreams validates a comma-separated list of resolver IPs, as
// given to --upstream. Loopback addresses are refused: inside a pod they
// are the pod itself.
func ParseUpstreams(flag, value string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(value, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		ip, err := netip.ParseAddr(f)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("%s: %q is not an IP address (give resolvers as IPs, comma-separated, e.g. %s=8.8.8.8,1.1.1.1)", flag, f, flag)
		}
		if ip.IsLoopback() || ip.IsUnspecified() {
			return nil, fmt.Errorf("%s: %s is a loopback/unspecified address; inside the CoreDNS pod it would not reach the host's resolver. Give the IP of a resolver pods can reach", flag, f)
		}
		out = append(out, ip.String())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no resolver given (e.g. %s=8.8.8.8,1.1.1.1)", flag, flag)
	}
	return out, nil
}

// HostUpstreams picks forwarders from a resolv.conf: its nameservers that a
// pod can reach (not loopback, e.g. 127.0.0.53 of a stub resolver). With
// none it returns FallbackUpstreams and a reason to log.
func HostUpstreams(path string, data []byte) (ups []string, fallbackReason string) {
	var skipped []string
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		ip, err := netip.ParseAddr(fields[1])
		if err != nil {
			skipped = append(skipped, fields[1]+" (not an IP)")
			continue
		}
		if ip.Zone() != "" || ip.IsLoopback() || ip.IsUnspecified() || (ip.Is6() && ip.IsLinkLocalUnicast()) {
			skipped = append(skipped, ip.String()+" (not reachable from a pod)")
			continue
		}
		ups = append(ups, ip.String())
	}
	if len(ups) > 0 {
		return ups, ""
	}
	reason := "it lists no nameserver"
	if len(skipped) > 0 {
		reason = "it lists only " + strings.Join(skipped, ", ")
	}
	return append([]string(nil), FallbackUpstreams...), fmt.Sprintf("%s: %s; CoreDNS forwards to %s instead (set others with `kubeseed enable dns --upstream IP,...`)", path, reason, strings.Join(FallbackUpstreams, ","))
}

// ReadHostUpstreams is HostUpstreams on a file; a missing or unreadable
// file falls back too.
func ReadHostUpstreams(path string) ([]string, string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return append([]string(nil), FallbackUpstreams...), fmt.Sprintf("cannot read %s: %v; CoreDNS forwards to %s instead (set others with `kubeseed enable dns --upstream IP,...`)", path, err, strings.Join(FallbackUpstreams, ","))
	}
	return HostUpstreams(path, data)
}
