// Package cluster records what a node joined: its role and how it reaches
// the cluster. A data dir without the record is a control plane (the first
// node of its own cluster).
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// Role is what a node runs.
type Role string

const (
	ControlPlane Role = "control-plane"
	Worker       Role = "worker"
)

// State is a joined node's record, var/cluster.json. A control plane that
// joined has one too; the first node of a cluster has none.
type State struct {
	Role Role `json:"role"`
	// Agents are the cluster agents (host:port) the node joined through,
	// and CAHash the pin it checked them with.
	Agents []string `json:"agents"`
	CAHash string   `json:"caHash"`
	// APIServers are the apiservers (host:port) at join time; the local
	// load balancer keeps its own current list.
	APIServers []string `json:"apiServers"`
	NodeIP     string   `json:"nodeIP"`
	// TokenID and Attempt name the join still to be reported complete;
	// empty once it is.
	TokenID string `json:"tokenID,omitempty"`
	Attempt string `json:"attempt,omitempty"`
}

// Path is the record's file.
func Path(l datadir.Layout) string { return filepath.Join(l.VarDir(), "cluster.json") }

// Load reads the record; a data dir without one is a control plane.
func Load(l datadir.Layout) (State, error) {
	data, err := os.ReadFile(Path(l))
	if errors.Is(err, fs.ErrNotExist) {
		return State{Role: ControlPlane}, nil
	}
	if err != nil {
		return State{}, err
	}
	return Parse(Path(l), data)
}

// Parse checks a record; errors name the file and the field.
func Parse(path string, data []byte) (State, error) {
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return State{}, fmt.Errorf("%s: %w", path, err)
	}
	if s.Role != Worker && s.Role != ControlPlane {
		return State{}, fmt.Errorf("%s: field role %q: want %q or %q", path, s.Role, Worker, ControlPlane)
	}
	if len(s.APIServers) == 0 {
		return State{}, fmt.Errorf("%s: field apiServers is empty: the node would not know its cluster", path)
	}
	for _, a := range append(append([]string{}, s.APIServers...), s.Agents...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return State{}, fmt.Errorf("%s: address %q: %w", path, a, err)
		}
	}
	if (s.TokenID == "") != (s.Attempt == "") {
		return State{}, fmt.Errorf("%s: fields tokenID and attempt go together", path)
	}
	return s, nil
}

// Save writes the record, 0600: it names a live join attempt.
func Save(l datadir.Layout, s State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.EnsureDir(l.VarDir(), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(Path(l), append(data, '\n'), 0o600)
}

// JoiningMarker is written before a join fills an empty data dir and
// removed once the join record is in place: a data dir that still has it
// holds an interrupted join, which the next join may discard.
func JoiningMarker(l datadir.Layout) string { return filepath.Join(l.Root, ".joining") }

// Interrupted reports whether l holds an interrupted join.
func Interrupted(l datadir.Layout) (bool, error) {
	return fsutil.Exists(JoiningMarker(l))
}
