// Package embedded carries the small helper binaries that `make build`
// compiles and packs into kubeseed: the pod sandbox's pause program,
// containerd's runc shim and CoreDNS for the DNS addon. The shim runs once per pod, so it is its own small
// binary rather than a mode of kubeseed, which would pay the start-up memory
// of every Kubernetes package in each pod.
package embedded

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Names of the embedded binaries.
const (
	Pause   = "pause"
	Shim    = "containerd-shim-runc-v2"
	CoreDNS = "coredns" // built from build/coredns, its own module

)

//go:embed all:bin
var binaries embed.FS

// sumsFile is written by `make embedded` beside the binaries, in
// sha256sum's format.
const sumsFile = "bin/SHA256SUMS"

// Digest returns the hex SHA-256 of an embedded binary. It comes from the
// digests recorded at build time, so checking whether an installed or
// imported copy is current never reads (and copies) the binary itself.
func Digest(name string) (string, error) {
	if sums, err := binaries.ReadFile(sumsFile); err == nil {
		for _, line := range strings.Split(string(sums), "\n") {
			if f := strings.Fields(line); len(f) == 2 && strings.TrimPrefix(f[1], "*") == name {
				return f[0], nil
			}
		}
	}
	f, err := binaries.Open("bin/" + name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("this kubeseed was built without %s: build it with `make build`", name)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FileDigest returns the hex SHA-256 of a file on disk, read in small
// pieces.
func FileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Binary returns a copy of an embedded binary's contents.
func Binary(name string) ([]byte, error) {
	data, err := binaries.ReadFile("bin/" + name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("this kubeseed was built without %s: build it with `make build`", name)
	}
	return data, err
}
