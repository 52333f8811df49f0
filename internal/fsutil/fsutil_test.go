package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileSyncAndSyncDir(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFileSync(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileSync(p, []byte("2")); err != nil { // truncates
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "2" {
		t.Fatalf("read back %q %v", b, err)
	}
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("SyncDir of a missing dir succeeded")
	}
}
