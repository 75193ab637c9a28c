package apiproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// stateFile is what StateFile holds.
type stateFile struct {
	Servers []string `json:"servers"`
}

// maxStateSize bounds what loadState reads: a valid file is a few KiB.
const maxStateSize = 64 << 10

// loadState reads the saved server list; nil, nil when there is no file.
func loadState(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read apiserver list: %w", err)
	}
	list, err := parseState(data)
	if err != nil {
		return nil, fmt.Errorf("read apiserver list %s: %w", path, err)
	}
	return list, nil
}

// parseState decodes a state file. Any bad entry rejects the whole file:
// half of a corrupted list is no better than the fallback servers.
func parseState(data []byte) ([]string, error) {
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("%d bytes, more than the %d a server list can need", len(data), maxStateSize)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	if len(st.Servers) > maxServers {
		return nil, fmt.Errorf("%d servers, at most %d are supported", len(st.Servers), maxServers)
	}
	list := make([]string, 0, len(st.Servers))
	for i, s := range st.Servers {
		a, err := normalizeAddr(s, false)
		if err != nil {
			return nil, fmt.Errorf("servers[%d] %q: %w", i, s, err)
		}
		if !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	return list, nil
}

// persist writes the current dynamic list to StateFile when it differs
// from what was last written. Errors are logged: the list in memory still
// works, and the fallback servers cover a lost file at the next start.
func (p *Proxy) persist() {
	if p.cfg.StateFile == "" {
		return
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	p.mu.Lock()
	list := slices.Clone(p.listed)
	log := p.log
	p.mu.Unlock()
	if p.saved != nil && slices.Equal(list, p.saved) {
		return
	}
	data, err := json.MarshalIndent(stateFile{Servers: list}, "", "  ")
	if err != nil {
		log.Error(err, "Encoding the apiserver list")
		return
	}
	if err := fsutil.WriteFileAtomic(p.cfg.StateFile, append(data, '\n'), 0o600); err != nil {
		log.Error(err, "Saving the apiserver list")
		return
	}
	p.saved = list
}
