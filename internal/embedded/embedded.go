// Package embedded carries the small helper binaries that `make build`
// compiles and packs into kubeseed: the pod sandbox's pause program,
// containerd's runc shim and CoreDNS for the DNS addon. The shim runs once per pod, so it is its own small
// binary rather than a mode of kubeseed, which would pay the start-up memory
// of every Kubernetes package in each pod.
package embedded

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
)

// Names of the embedded binaries.
const (
	Pause   = "pause"
	Shim    = "containerd-shim-runc-v2"
	CoreDNS = "coredns" // built from build/coredns, its own module

)

//go:embed all:bin
var binaries embed.FS

// Binary returns an embedded binary's contents.
func Binary(name string) ([]byte, error) {
	data, err := binaries.ReadFile("bin/" + name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("this kubeseed was built without %s: build it with `make build`", name)
	}
	return data, err
}
