package embedded

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// TestDigestMatchesBinary checks the build-time digests against the
// binaries themselves, so a stale SHA256SUMS fails here, not on a node.
func TestDigestMatchesBinary(t *testing.T) {
	for _, name := range []string{Pause, Shim, CoreDNS} {
		data, err := Binary(name)
		if err != nil {
			t.Skipf("%v (unit tests may run without `make embedded`)", err)
		}
		sum := sha256.Sum256(data)
		got, err := Digest(name)
		if err != nil || got != hex.EncodeToString(sum[:]) {
			t.Errorf("Digest(%s) = %s, %v; the binary's is %x", name, got, err, sum)
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if fd, err := FileDigest(path); err != nil || fd != got {
			t.Errorf("FileDigest(%s) = %s, %v; want %s", name, fd, err, got)
		}
	}
	if _, err := Digest("no-such-binary"); err == nil {
		t.Error("Digest of a binary that was not built succeeded")
	}
}
