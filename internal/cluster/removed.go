package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// removedPrefix keys the nodes `kubeseed remove-node` removed, by name, in
// etcd: every control plane's auth webhook refuses their certificates,
// which stay valid until they expire.
const removedPrefix = "/kubeseed/removed-nodes/"

// Removal is what is kept of a removed node.
type Removal struct {
	Name      string    `json:"name"`
	RemovedAt time.Time `json:"removedAt"`
}

// RemovedNodes is the etcd record of removed nodes.
type RemovedNodes struct{ cli *clientv3.Client }

// NewRemovedNodes reads and writes the record through cli.
func NewRemovedNodes(cli *clientv3.Client) *RemovedNodes { return &RemovedNodes{cli: cli} }

// Add records name as removed.
func (r *RemovedNodes) Add(ctx context.Context, name string, at time.Time) error {
	data, err := json.Marshal(Removal{Name: name, RemovedAt: at.UTC()})
	if err != nil {
		return err
	}
	if _, err := r.cli.Put(ctx, removedPrefix+name, string(data)); err != nil {
		return fmt.Errorf("record node %s as removed in etcd: %w", name, err)
	}
	return nil
}

// Forget drops name from the record: a new node joined under that name
// with a token, and its new certificates are good.
func (r *RemovedNodes) Forget(ctx context.Context, name string) error {
	if _, err := r.cli.Delete(ctx, removedPrefix+name); err != nil {
		return fmt.Errorf("forget removed node %s in etcd: %w", name, err)
	}
	return nil
}

// Has reports whether name was removed.
func (r *RemovedNodes) Has(ctx context.Context, name string) (bool, error) {
	resp, err := r.cli.Get(ctx, removedPrefix+name, clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("read removed nodes from etcd: %w", err)
	}
	return resp.Count > 0, nil
}

// RemovedSet is an in-memory copy of the record that Follow keeps current.
type RemovedSet struct {
	mu     sync.RWMutex
	names  map[string]bool
	synced chan struct{}
	once   sync.Once
}

// NewRemovedSet returns an empty set, not yet synced.
func NewRemovedSet() *RemovedSet {
	return &RemovedSet{names: map[string]bool{}, synced: make(chan struct{})}
}

// Contains reports whether name was removed, as last seen.
func (s *RemovedSet) Contains(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.names[name]
}

// Synced is closed once the set holds the whole record.
func (s *RemovedSet) Synced() <-chan struct{} { return s.synced }

func (s *RemovedSet) replace(names map[string]bool) {
	s.mu.Lock()
	s.names = names
	s.mu.Unlock()
	s.once.Do(func() { close(s.synced) })
}

func (s *RemovedSet) set(name string, removed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if removed {
		s.names[name] = true
	} else {
		delete(s.names, name)
	}
}

// Follow lists the record into set, then watches it, listing again after
// any watch failure, until ctx ends.
func (r *RemovedNodes) Follow(ctx context.Context, set *RemovedSet) {
	for ctx.Err() == nil {
		resp, err := r.cli.Get(ctx, removedPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		names := map[string]bool{}
		for _, kv := range resp.Kvs {
			names[strings.TrimPrefix(string(kv.Key), removedPrefix)] = true
		}
		set.replace(names)
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for w := range r.cli.Watch(wctx, removedPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
			if w.Err() != nil {
				break
			}
			for _, ev := range w.Events {
				set.set(strings.TrimPrefix(string(ev.Kv.Key), removedPrefix), ev.Type == clientv3.EventTypePut)
			}
		}
		cancel()
	}
}
