package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func readTar(t *testing.T, data []byte) map[string]*tarEntry {
	t.Helper()
	out := map[string]*tarEntry{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out[h.Name] = &tarEntry{h: h, data: body}
	}
}

type tarEntry struct {
	h    *tar.Header
	data []byte
}

func TestBuildOCIArchive(t *testing.T) {
	spec := Spec{
		Name: "kubeseed.local/test:1",
		Files: []File{
			{Path: "/bin/busybox", Mode: 0o755, Data: []byte("\x7fELF fake")},
			{Path: "/bin/sh", Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"},
			{Path: "/etc/hosts", Mode: 0o644, Data: []byte("127.0.0.1 localhost\n")},
		},
		Entrypoint: []string{"/bin/sh"},
	}
	archive, err := BuildOCIArchive(spec)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := BuildOCIArchive(spec)
	if !bytes.Equal(archive, again) {
		t.Error("build is not reproducible")
	}
	files := readTar(t, archive)
	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"].data, &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != spec.Name ||
		index.Manifests[0].Annotations[ocispec.AnnotationRefName] != "1" {
		t.Fatalf("index: %+v", index)
	}
	blob := func(d digest.Digest) []byte {
		e := files["blobs/sha256/"+d.Encoded()]
		if e == nil {
			t.Fatalf("missing blob %s", d)
		}
		if digest.FromBytes(e.data) != d {
			t.Fatalf("blob %s has the wrong content", d)
		}
		return e.data
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(blob(manifest.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.Entrypoint[0] != "/bin/sh" || cfg.OS != "linux" {
		t.Errorf("config: %+v", cfg)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(manifest.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	if digest.FromBytes(raw) != cfg.RootFS.DiffIDs[0] {
		t.Error("diff ID does not match the uncompressed layer")
	}
	layer := readTar(t, raw)
	for name, want := range map[string]byte{"bin/": tar.TypeDir, "bin/busybox": tar.TypeReg, "bin/sh": tar.TypeSymlink, "etc/": tar.TypeDir, "etc/hosts": tar.TypeReg} {
		e := layer[name]
		if e == nil || e.h.Typeflag != want {
			t.Errorf("layer entry %s: %+v", name, e)
			continue
		}
		if e.h.Uid != 0 || e.h.Gid != 0 {
			t.Errorf("%s owned by %d:%d", name, e.h.Uid, e.h.Gid)
		}
	}
	if layer["bin/busybox"].h.Mode != 0o755 || string(layer["bin/busybox"].data) != "\x7fELF fake" {
		t.Errorf("busybox entry: %+v", layer["bin/busybox"].h)
	}
}

func TestBuildRejectsRelativePaths(t *testing.T) {
	if _, err := BuildOCIArchive(Spec{Name: "x:1", Files: []File{{Path: "bin/sh", Mode: 0o755}}}); err == nil {
		t.Error("a relative path was accepted")
	}
}

func TestUncompressedLayer(t *testing.T) {
	spec := Spec{Name: "kubeseed.local/raw:1", Files: []File{{Path: "/bin/x", Mode: 0o755, Data: []byte("x")}}, Uncompressed: true}
	archive, err := BuildOCIArchive(spec)
	if err != nil {
		t.Fatal(err)
	}
	entries := readTar(t, archive)
	var index ocispec.Index
	if err := json.Unmarshal(entries["index.json"].data, &index); err != nil {
		t.Fatal(err)
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(entries["blobs/sha256/"+index.Manifests[0].Digest.Encoded()].data, &manifest); err != nil {
		t.Fatal(err)
	}
	layer := manifest.Layers[0]
	if layer.MediaType != ocispec.MediaTypeImageLayer {
		t.Errorf("layer media type %s, want %s", layer.MediaType, ocispec.MediaTypeImageLayer)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(entries["blobs/sha256/"+manifest.Config.Digest.Encoded()].data, &cfg); err != nil {
		t.Fatal(err)
	}
	// Uncompressed, the layer's digest is its diff ID, and it is a tar.
	if layer.Digest != cfg.RootFS.DiffIDs[0] {
		t.Errorf("layer digest %s differs from diff ID %s", layer.Digest, cfg.RootFS.DiffIDs[0])
	}
	if files := readTar(t, entries["blobs/sha256/"+layer.Digest.Encoded()].data); files["bin/x"] == nil || string(files["bin/x"].data) != "x" {
		t.Errorf("layer tar lacks bin/x: %v", files)
	}
}
