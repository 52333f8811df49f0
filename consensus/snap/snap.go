// Package snap stores raft snapshots as files named
// "<term>-<index>.snap" (16 hex digits each).
//
// A file is
//
//	magic | state machine image | raftpb.SnapshotMetadata | metaLen u32 | crc32c u32
//
// where magic is "STRSNAP1" for a snapshot that carries an image of the
// state machine, and "STRMETA1" for a metadata-only snapshot (no image
// bytes): one taken for a state machine whose own storage is durable, so
// the snapshot only records where the raft log may restart (see
// consensus.DurableStateMachine).
//
// The metadata trails the image because the index an image reflects is
// only known once the state machine has written it. The CRC (Castagnoli)
// covers every byte before it. A file is written under a temporary name,
// fsync'd, renamed into place and the directory fsync'd, so a crash leaves
// either the previous set of snapshots or the new complete one. Load skips
// (and renames to *.broken) files that fail verification.
package snap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/internal/fsutil"
)

const (
	magic       = "STRSNAP1" // a snapshot with an image
	metaMagic   = "STRMETA1" // a metadata-only snapshot; same length as magic
	trailerSize = 8
	ext         = ".snap"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrNoSnapshot is returned by Load when no valid snapshot exists.
var ErrNoSnapshot = errors.New("snap: no valid snapshot")

// Snapshotter saves and loads snapshot files in one directory.
type Snapshotter struct {
	dir    string
	log    *slog.Logger
	noSync bool
}

// New returns a Snapshotter for dir, creating it and removing temporary
// files left by an interrupted Save. noSync skips fsync (test rigs only).
func New(dir string, log *slog.Logger, noSync bool) (*Snapshotter, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open snap dir %s: %w", dir, err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open snap dir %s: %w", dir, err)
	}
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".tmp") {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
	return &Snapshotter{dir: dir, log: log, noSync: noSync}, nil
}

// File is a verified snapshot file.
type File struct {
	Metadata raftpb.SnapshotMetadata
	Path     string
	imageLen int64
	hasImage bool
}

// HasImage reports whether the file carries a state machine image (false
// for a metadata-only snapshot written by SaveMeta).
func (f *File) HasImage() bool { return f.hasImage }

// ErrNoImage is returned by File.Image for a metadata-only snapshot.
var ErrNoImage = errors.New("snap: metadata-only snapshot has no image")

// Image opens the state machine image held by the file. The file may be
// purged while the reader is open: the open descriptor keeps its data.
func (f *File) Image() (io.ReadCloser, error) {
	if !f.hasImage {
		return nil, fmt.Errorf("open snapshot image %s: %w", f.Path, ErrNoImage)
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, fmt.Errorf("open snapshot image %s: %w", f.Path, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(fh, int64(len(magic)), f.imageLen), fh}, nil
}

// MetaFunc maps the index an image reflects to that index's term and the
// membership in force at it.
type MetaFunc func(index uint64) (term uint64, cs raftpb.ConfState, err error)

// Save writes a new snapshot: write streams the image and returns the
// index it reflects, meta completes the metadata. On success the snapshot
// is durable. It is safe to call concurrently with Load and Purge of other
// files, but not with another Save.
func (s *Snapshotter) Save(write func(io.Writer) (uint64, error), meta MetaFunc) (raftpb.SnapshotMetadata, error) {
	return s.save(magic, write, meta)
}

// SaveMeta durably writes a metadata-only snapshot: a record that the state
// machine's own storage durably holds everything up to md.Index, so the
// raft log before it may be released. Its File has no image.
func (s *Snapshotter) SaveMeta(md raftpb.SnapshotMetadata) error {
	_, err := s.save(metaMagic, func(io.Writer) (uint64, error) { return md.Index, nil },
		func(uint64) (uint64, raftpb.ConfState, error) { return md.Term, md.ConfState, nil })
	return err
}

func (s *Snapshotter) save(kind string, write func(io.Writer) (uint64, error), meta MetaFunc) (raftpb.SnapshotMetadata, error) {
	var md raftpb.SnapshotMetadata
	f, err := os.CreateTemp(s.dir, "*"+ext+".tmp")
	if err != nil {
		return md, fmt.Errorf("save snapshot: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) (raftpb.SnapshotMetadata, error) {
		f.Close()
		os.Remove(tmp)
		return raftpb.SnapshotMetadata{}, fmt.Errorf("save snapshot %s: %w", tmp, err)
	}
	h := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 256<<10)
	bw.WriteString(kind)
	index, err := write(bw)
	if err != nil {
		return fail(fmt.Errorf("write image: %w", err))
	}
	term, cs, err := meta(index)
	if err != nil {
		return fail(fmt.Errorf("metadata for index %d: %w", index, err))
	}
	md = raftpb.SnapshotMetadata{Index: index, Term: term, ConfState: cs}
	mb, err := md.Marshal()
	if err != nil {
		return fail(err)
	}
	bw.Write(mb)
	bw.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(mb))))
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if _, err := f.Write(binary.LittleEndian.AppendUint32(nil, h.Sum32())); err != nil {
		return fail(err)
	}
	if !s.noSync {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	path := filepath.Join(s.dir, fileName(term, index))
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if !s.noSync {
		if err := fsutil.SyncDir(s.dir); err != nil {
			return md, fmt.Errorf("save snapshot %s: %w", path, err)
		}
	}
	return md, nil
}

// SaveImage saves a snapshot whose metadata is already known (one received
// from a leader).
func (s *Snapshotter) SaveImage(md raftpb.SnapshotMetadata, image []byte) error {
	_, err := s.Save(func(w io.Writer) (uint64, error) {
		_, err := w.Write(image)
		return md.Index, err
	}, func(uint64) (uint64, raftpb.ConfState, error) { return md.Term, md.ConfState, nil })
	return err
}

// Load returns the newest snapshot that verifies, or ErrNoSnapshot. Files
// that fail verification are reported and renamed to *.broken.
func (s *Snapshotter) Load() (*File, error) {
	return s.LoadFunc(nil)
}

// LoadImage is Load restricted to snapshots that carry an image.
func (s *Snapshotter) LoadImage() (*File, error) {
	return s.LoadFunc((*File).HasImage)
}

// LoadFunc returns the newest snapshot that verifies and for which ok
// (nil: any) returns true, or ErrNoSnapshot. Files that fail verification
// are reported and renamed to *.broken.
func (s *Snapshotter) LoadFunc(ok func(*File) bool) (*File, error) {
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		path := filepath.Join(s.dir, n.name)
		f, err := verify(path)
		if err == nil {
			if ok == nil || ok(f) {
				return f, nil
			}
			continue
		}
		s.log.Error("snap: skipping invalid snapshot", "file", path, "err", err)
		if rerr := os.Rename(path, path+".broken"); rerr != nil {
			s.log.Error("snap: cannot set invalid snapshot aside", "file", path, "err", rerr)
		}
	}
	return nil, ErrNoSnapshot
}

// Purge deletes all but the keep newest snapshot files and returns the
// index of the oldest one kept (0 if none).
func (s *Snapshotter) Purge(keep int) (uint64, error) {
	names, err := s.names()
	if err != nil {
		return 0, err
	}
	var oldest uint64
	for i, n := range names {
		if i < keep {
			oldest = n.index
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, n.name)); err != nil {
			return oldest, fmt.Errorf("purge snapshot: %w", err)
		}
	}
	return oldest, nil
}

type snapName struct {
	name        string
	term, index uint64
}

func fileName(term, index uint64) string { return fmt.Sprintf("%016x-%016x%s", term, index, ext) }

// names lists snapshot files, newest (highest index, then term) first.
func (s *Snapshotter) names() ([]snapName, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots %s: %w", s.dir, err)
	}
	var out []snapName
	for _, de := range des {
		var n snapName
		n.name = de.Name()
		if !strings.HasSuffix(n.name, ext) {
			continue
		}
		if _, err := fmt.Sscanf(strings.TrimSuffix(n.name, ext), "%016x-%016x", &n.term, &n.index); err != nil ||
			fileName(n.term, n.index) != n.name {
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].index != out[j].index {
			return out[i].index > out[j].index
		}
		return out[i].term > out[j].term
	})
	return out, nil
}

// verify checks a snapshot file end to end and decodes its metadata.
func verify(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size < int64(len(magic))+trailerSize {
		return nil, errors.New("file too short")
	}
	var tr [trailerSize]byte
	if _, err := fh.ReadAt(tr[:], size-trailerSize); err != nil {
		return nil, err
	}
	metaLen := int64(binary.LittleEndian.Uint32(tr[0:]))
	want := binary.LittleEndian.Uint32(tr[4:])
	imageLen := size - trailerSize - metaLen - int64(len(magic))
	if imageLen < 0 {
		return nil, errors.New("bad metadata length")
	}
	var h hash.Hash32 = crc32.New(crcTable)
	if _, err := io.Copy(h, io.NewSectionReader(fh, 0, size-4)); err != nil {
		return nil, err
	}
	if h.Sum32() != want {
		return nil, errors.New("checksum mismatch")
	}
	head := make([]byte, len(magic))
	if _, err := fh.ReadAt(head, 0); err != nil || (string(head) != magic && string(head) != metaMagic) {
		return nil, errors.New("bad magic")
	}
	if string(head) == metaMagic && imageLen != 0 {
		return nil, errors.New("metadata-only snapshot holds image bytes")
	}
	mb := make([]byte, metaLen)
	if _, err := fh.ReadAt(mb, int64(len(magic))+imageLen); err != nil {
		return nil, err
	}
	f := &File{Path: path, imageLen: imageLen, hasImage: string(head) == magic}
	if err := f.Metadata.Unmarshal(mb); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	if fileName(f.Metadata.Term, f.Metadata.Index) != filepath.Base(path) {
		return nil, errors.New("metadata does not match file name")
	}
	return f, nil
}
