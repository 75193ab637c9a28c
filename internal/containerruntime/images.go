package containerruntime

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/platforms"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/addons/dns"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/embedded"
	"github.com/kubeseed/kubeseed/internal/images"
)

// Snapshotter matches the CRI plugin's in the config template.
const Snapshotter = "overlayfs"

// pinnedLabel keeps the CRI plugin from garbage-collecting an image.
const pinnedLabel = "io.cri-containerd.pinned"

// sourceLabel records the digest of the binary an image was built from, so
// a start skips rebuilding and re-importing an image that is already current.
const sourceLabel = "io.kubeseed.source-digest"

// recipe versions how builtins are built from their binary (layout, layer
// format); a change re-imports them even when the binary is the same.
const recipe = "2"

// builtin is an image built at start from one embedded binary.
type builtin struct {
	what   string // for messages
	name   string // image reference
	binary string // embedded binary, run as the entrypoint
}

var builtins = []builtin{
	{"pause", defaults.PauseImage, embedded.Pause},
	// CoreDNS holds the one static binary; the pod runs it as a non-root user
	// with its Corefile mounted from a ConfigMap.
	{"CoreDNS", dns.Image, embedded.CoreDNS},
}

func (b builtin) archive(bin []byte) ([]byte, error) {
	path := "/" + b.binary
	return images.BuildOCIArchive(images.Spec{
		Name:       b.name,
		Files:      []images.File{{Path: path, Mode: 0o755, Data: bin}},
		Entrypoint: []string{path},
		// Built and imported here: gzip would only cost start-up CPU.
		Uncompressed: true,
	})
}

// ImportBuiltins imports the images every node needs, so no registry is
// ever contacted for them. An image already imported from the same binary
// and unpacked is kept as it is.
func ImportBuiltins(ctx context.Context, client *containerd.Client) error {
	imported := false
	defer func() {
		if imported {
			// The archives were tens of MB of garbage: give it back now
			// rather than carry it in the idle node's RSS.
			debug.FreeOSMemory()
		}
	}()
	for _, b := range builtins {
		sum, err := embedded.Digest(b.binary)
		if err != nil {
			return err
		}
		source := "sha256:" + sum + ";recipe=" + recipe
		if current(ctx, client, b.name, source) {
			continue
		}
		imported = true
		bin, err := embedded.Binary(b.binary)
		if err != nil {
			return err
		}
		archive, err := b.archive(bin)
		if err != nil {
			return err
		}
		labels := map[string]string{pinnedLabel: "pinned", sourceLabel: source}
		if _, err = importArchive(ctx, client, bytes.NewReader(archive), labels); err != nil {
			return fmt.Errorf("import the built-in %s image: %w", b.what, err)
		}
		klog.InfoS("Imported a built-in image", "image", b.name, "source", source)
	}
	return nil
}

// current reports whether the image name exists, was built from source and
// is unpacked for the CRI's snapshotter.
func current(ctx context.Context, client *containerd.Client, name, source string) bool {
	img, err := client.ImageService().Get(ctx, name)
	if err != nil || img.Labels[sourceLabel] != source {
		return false
	}
	unpacked, err := containerd.NewImageWithPlatform(client, img, platforms.Default()).IsUnpacked(ctx, Snapshotter)
	return err == nil && unpacked
}

// ImportFile imports an OCI or docker-archive tarball (optionally gzipped)
// and returns the names of the images it held.
func ImportFile(ctx context.Context, client *containerd.Client, path string) ([]string, error) {
	if err := CheckArchive(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := maybeGunzip(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return importArchive(ctx, client, r, nil)
}

func importArchive(ctx context.Context, client *containerd.Client, r io.Reader, labels map[string]string) ([]string, error) {
	opts := []containerd.ImportOpt{containerd.WithImportPlatform(platforms.Default())}
	if labels != nil {
		opts = append(opts, containerd.WithImageLabels(labels))
	}
	imgs, err := client.Import(ctx, r, opts...)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, img := range imgs {
		if err := containerd.NewImageWithPlatform(client, img, platforms.Default()).Unpack(ctx, Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", img.Name, err)
		}
		names = append(names, img.Name)
	}
	return names, nil
}

// CheckArchive fails with a clear message unless path is a tarball holding
// an OCI image layout (index.json) or a docker-archive (manifest.json).
func CheckArchive(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := maybeGunzip(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s is not an image archive: %v (expected an OCI image layout or docker-archive tarball, as made by `docker save` or `skopeo copy ... oci-archive:FILE`)", path, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "index.json", "manifest.json":
			return nil
		}
	}
	return fmt.Errorf("%s is a tarball but not an image archive: it has no index.json (OCI layout) or manifest.json (docker-archive)", path)
}

func maybeGunzip(r *bufio.Reader) (io.Reader, error) {
	magic, err := r.Peek(2)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(r)
	}
	return r, nil
}

// Image is one row of `kubeseed images ls`.
type Image struct {
	Name   string
	Digest string
	Size   int64
}

// List returns the images in the Kubernetes namespace.
func List(ctx context.Context, client *containerd.Client) ([]Image, error) {
	imgs, err := client.ListImages(ctx)
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, img := range imgs {
		size, err := img.Size(ctx)
		if err != nil {
			size = -1
		}
		out = append(out, Image{Name: img.Name(), Digest: img.Target().Digest.String(), Size: size})
	}
	return out, nil
}
