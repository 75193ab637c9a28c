package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageImport imports the same busybox image as a docker-archive (what
// `docker save` writes) and as a gzipped OCI layout, runs a pod from the
// docker-archive one, and checks that files which are not image archives
// are refused with a clear message.
func TestImageImport(t *testing.T) {
	n := newNode(t)
	n.start()
	dir := t.TempDir()
	oci, err := os.ReadFile(busyboxArchive(t))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("docker-archive", func(t *testing.T) {
		const name = "kubeseed.local/busybox-docker:test"
		path := filepath.Join(dir, "docker.tar")
		if err := os.WriteFile(path, dockerArchive(t, oci, name), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := n.mustKubeseed("images", "import", path); !strings.Contains(out, name) {
			t.Fatalf("import printed %q, want %s", out, name)
		}
		n.apply(`
apiVersion: v1
kind: Pod
metadata: {name: from-docker}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: ` + name + `
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "echo hello-from-docker-archive"]
`)
		n.waitFor("pod from-docker succeeded", "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/from-docker", "--timeout=120s")
		if out, err := n.kubectl("logs", "from-docker"); err != nil || !strings.Contains(out, "hello-from-docker-archive") {
			t.Errorf("logs of the docker-archive pod: %v %q", err, out)
		}
	})

	t.Run("gzipped OCI layout", func(t *testing.T) {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(oci)
		_ = zw.Close()
		path := filepath.Join(dir, "busybox.tar.gz")
		if err := os.WriteFile(path, gz.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := n.mustKubeseed("images", "import", path); !strings.Contains(out, testImage) {
			t.Fatalf("import printed %q, want %s", out, testImage)
		}
		if out := n.mustKubeseed("images", "ls"); !strings.Contains(out, testImage) {
			t.Errorf("images ls lacks %s:\n%s", testImage, out)
		}
	})

	t.Run("not an archive", func(t *testing.T) {
		plain := filepath.Join(dir, "notes.txt")
		_ = os.WriteFile(plain, []byte("hello"), 0o644)
		tarball := filepath.Join(dir, "files.tar")
		if out, err := exec.Command("tar", "-cf", tarball, "-C", dir, "notes.txt").CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		for file, want := range map[string]string{
			plain:                        "is not an image archive",
			tarball:                      "has no index.json",
			filepath.Join(dir, "absent"): "no such file",
		} {
			out, err := n.kubeseed("images", "import", file)
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("import %s: %v\n%s (want %q)", file, err, out, want)
			}
		}
	})
}

// dockerArchive rewrites an OCI image layout tarball as `docker save` lays
// out an image: manifest.json, the config, and each layer uncompressed.
func dockerArchive(t *testing.T, oci []byte, tag string) []byte {
	t.Helper()
	blobs := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(oci))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		blobs[h.Name] = data
	}
	blob := func(digest string) []byte {
		b, ok := blobs["blobs/"+strings.Replace(digest, ":", "/", 1)]
		if !ok {
			t.Fatalf("OCI layout lacks blob %s", digest)
		}
		return b
	}
	type desc struct{ Digest string }
	var index struct{ Manifests []desc }
	var manifest struct {
		Config desc
		Layers []desc
	}
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v", err)
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(data)
	}
	entry := map[string]any{"Config": "config.json", "RepoTags": []string{tag}}
	add("config.json", blob(manifest.Config.Digest))
	var layers []string
	for i, l := range manifest.Layers {
		zr, err := gzip.NewReader(bytes.NewReader(blob(l.Digest)))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join("layer"+string(rune('0'+i)), "layer.tar")
		add(name, raw)
		layers = append(layers, name)
	}
	entry["Layers"] = layers
	m, _ := json.Marshal([]any{entry})
	add("manifest.json", m)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
