// Package images builds small OCI images from local files (the built-in
// pause image, test images) and imports image archives into containerd, so
// a node never needs a registry.
package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// File is one entry of an image's single layer.
type File struct {
	Path     string // absolute path inside the image, e.g. /bin/sh
	Mode     fs.FileMode
	Data     []byte // regular files
	Linkname string // symlinks (Mode has fs.ModeSymlink)
}

// Spec describes an image to build.
type Spec struct {
	Name       string // full reference, e.g. registry.k8s.io/pause:3.10
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
	// Uncompressed leaves the layer a plain tar: for images built and
	// imported on the same node, where gzip only costs start-up CPU.
	Uncompressed bool
}

// epoch keeps builds reproducible: the same inputs give the same digests.
var epoch = time.Unix(0, 0).UTC()

// BuildOCIArchive returns an OCI image layout as a tar stream, with the
// annotation containerd's importer uses to name the image.
func BuildOCIArchive(s Spec) ([]byte, error) {
	layer, diffID, err := buildLayer(s.Files, !s.Uncompressed)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", s.Name, err)
	}
	created := epoch
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   ocispec.ImageConfig{Entrypoint: s.Entrypoint, Cmd: s.Cmd, Env: s.Env, WorkingDir: "/"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	layerType := ocispec.MediaTypeImageLayerGzip
	if s.Uncompressed {
		layerType = ocispec.MediaTypeImageLayer
	}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    descriptor(ocispec.MediaTypeImageConfig, cfgJSON),
		Layers:    []ocispec.Descriptor{descriptor(layerType, layer)},
	}
	manJSON, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	manDesc := descriptor(ocispec.MediaTypeImageManifest, manJSON)
	manDesc.Annotations = map[string]string{
		"io.containerd.image.name": s.Name,
		ocispec.AnnotationRefName:  refName(s.Name),
	}
	manDesc.Platform = &cfg.Platform
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manDesc},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	entries := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layout},
		{"index.json", indexJSON},
		{blobPath(cfgJSON), cfgJSON},
		{blobPath(layer), layer},
		{blobPath(manJSON), manJSON},
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// buildLayer makes a layer, gzipped if compress is set, with numeric owners 0:0, parents
// created as needed, and returns it with its diff ID (the digest of the
// uncompressed tar).
func buildLayer(files []File, compress bool) ([]byte, digest.Digest, error) {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dirs := map[string]bool{}
	var mkdirs func(dir string) error
	mkdirs = func(dir string) error {
		if dir == "/" || dir == "." || dirs[dir] {
			return nil
		}
		if err := mkdirs(path.Dir(dir)); err != nil {
			return err
		}
		dirs[dir] = true
		return tw.WriteHeader(&tar.Header{Name: dir[1:] + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch})
	}
	for _, f := range sorted {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return nil, "", fmt.Errorf("layer path %q must be absolute and clean", f.Path)
		}
		if err := mkdirs(path.Dir(f.Path)); err != nil {
			return nil, "", err
		}
		h := &tar.Header{Name: f.Path[1:], Mode: int64(f.Mode.Perm()), ModTime: epoch}
		switch {
		case f.Mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Linkname
		case f.Mode.IsDir():
			if dirs[f.Path] {
				continue
			}
			dirs[f.Path] = true
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID := digest.FromBytes(raw.Bytes())
	if !compress {
		return raw.Bytes(), diffID, nil
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, "", err
	}
	// No name or mtime in the gzip header (like gzip -n), for reproducibility.
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}

func descriptor(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

func blobPath(data []byte) string {
	return "blobs/sha256/" + digest.FromBytes(data).Encoded()
}

// refName is the tag part of a reference, for the OCI ref.name annotation.
func refName(ref string) string {
	for i := len(ref) - 1; i >= 0 && ref[i] != '/'; i-- {
		if ref[i] == ':' {
			return ref[i+1:]
		}
	}
	return "latest"
}
