package pki

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// Backups are certs-backup/<seq>-<UTC time>: the sequence number orders
// them whatever the clock does.
type backup struct {
	seq  int
	path string
}

func (m Manager) backups() ([]backup, error) {
	dir := m.Layout.CertsBackupDir()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var out []backup
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "-")
		seq, err := strconv.Atoi(num)
		if !e.IsDir() || !ok || err != nil || seq <= 0 {
			continue
		}
		out = append(out, backup{seq: seq, path: filepath.Join(dir, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out, nil
}

func (m Manager) nextBackupDir(now time.Time) (string, error) {
	bs, err := m.backups()
	if err != nil {
		return "", err
	}
	seq := 1
	if len(bs) > 0 {
		seq = bs[len(bs)-1].seq + 1
	}
	return filepath.Join(m.Layout.CertsBackupDir(), fmt.Sprintf("%04d-%s", seq, now.UTC().Format("20060102T150405Z"))), nil
}

func (m Manager) latestBackup() (string, error) {
	bs, err := m.backups()
	if err != nil {
		return "", err
	}
	for i := len(bs) - 1; i >= 0; i-- {
		if ok, err := fsutil.Exists(filepath.Join(bs[i].path, fsutil.BackupManifest)); err != nil {
			return "", err
		} else if ok {
			return bs[i].path, nil
		}
	}
	return "", fmt.Errorf("no backup to restore in %s: nothing was changed", m.Layout.CertsBackupDir())
}

// pruneBackups keeps the newest KeepBackups backups.
func (m Manager) pruneBackups() error {
	keep := m.KeepBackups
	if keep <= 0 {
		keep = DefaultKeepBackups
	}
	bs, err := m.backups()
	if err != nil {
		return err
	}
	for i := 0; i < len(bs)-keep; i++ {
		if err := os.RemoveAll(bs[i].path); err != nil {
			return fmt.Errorf("prune old backup %s: %w", bs[i].path, err)
		}
	}
	return nil
}
