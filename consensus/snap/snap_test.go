package snap

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func save(t *testing.T, s *Snapshotter, term, index uint64, image string) {
	t.Helper()
	cs := raftpb.ConfState{Voters: []uint64{1, 2}}
	md, err := s.Save(func(w io.Writer) (uint64, error) {
		_, err := io.WriteString(w, image)
		return index, err
	}, func(i uint64) (uint64, raftpb.ConfState, error) { return term, cs, nil })
	if err != nil {
		t.Fatal(err)
	}
	if md.Index != index || md.Term != term || !reflect.DeepEqual(md.ConfState, cs) {
		t.Fatalf("metadata %+v", md)
	}
}

func image(t *testing.T, f *File) string {
	rc, err := f.Image()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSaveLoadPurge(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("Load on empty = %v", err)
	}
	save(t, s, 1, 10, "ten")
	save(t, s, 2, 20, "twenty")
	save(t, s, 2, 30, "thirty")
	f, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata.Index != 30 || f.Metadata.Term != 2 || image(t, f) != "thirty" {
		t.Fatalf("loaded %+v %q", f.Metadata, image(t, f))
	}
	// Corrupt the newest: Load falls back to the previous one.
	b, _ := os.ReadFile(f.Path)
	b[len(magic)+1] ^= 0xff
	os.WriteFile(f.Path, b, 0o600)
	f, err = s.Load()
	if err != nil || f.Metadata.Index != 20 || image(t, f) != "twenty" {
		t.Fatalf("fallback: %+v %v", f, err)
	}
	if _, err := os.Stat(filepath.Join(dir, fileName(2, 30)+".broken")); err != nil {
		t.Fatalf("broken snapshot not set aside: %v", err)
	}
	oldest, err := s.Purge(1)
	if err != nil || oldest != 20 {
		t.Fatalf("Purge = %d, %v", oldest, err)
	}
	if _, err := os.Stat(filepath.Join(dir, fileName(1, 10))); !os.IsNotExist(err) {
		t.Fatalf("old snapshot not purged: %v", err)
	}
}

func TestTruncatedSnapshotSkipped(t *testing.T) {
	dir := t.TempDir()
	s, _ := New(dir, nil, false)
	save(t, s, 1, 5, "five")
	save(t, s, 1, 6, "six")
	p := filepath.Join(dir, fileName(1, 6))
	fi, _ := os.Stat(p)
	os.Truncate(p, fi.Size()-1)
	f, err := s.Load()
	if err != nil || f.Metadata.Index != 5 {
		t.Fatalf("Load = %+v, %v", f, err)
	}
}

// TestSaveMeta: a metadata-only snapshot verifies, has no image, and is
// skipped by LoadImage in favour of an older snapshot that has one.
func TestSaveMeta(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	save(t, s, 1, 10, "ten")
	md := raftpb.SnapshotMetadata{Index: 20, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{7}}}
	if err := s.SaveMeta(md); err != nil {
		t.Fatal(err)
	}
	f, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Metadata, md) || f.HasImage() {
		t.Fatalf("Load = %+v image=%v, want %+v without image", f.Metadata, f.HasImage(), md)
	}
	if _, err := f.Image(); !errors.Is(err, ErrNoImage) {
		t.Fatalf("Image of a metadata-only snapshot: %v, want ErrNoImage", err)
	}
	f, err = s.LoadImage()
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata.Index != 10 || !f.HasImage() || image(t, f) != "ten" {
		t.Fatalf("LoadImage = %+v %v", f.Metadata, f.HasImage())
	}
	// With the image snapshot gone, LoadImage finds none.
	if err := os.Remove(f.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadImage(); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("LoadImage with only a metadata snapshot: %v", err)
	}
}
