package etcddata

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

func appendField(b []byte, num int, wire int) []byte {
	return binary.AppendUvarint(b, uint64(num<<3|wire))
}

func appendBytes(b []byte, num int, v []byte) []byte {
	b = appendField(b, num, 2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// writeSyntheticDataDir writes an etcd data dir in etcd's formats: a
// snapshot holding n keys under /1/bench/<i> and a WAL whose HardState
// commits it.
func writeSyntheticDataDir(tb testing.TB, dir string, n int) {
	tb.Helper()
	kids := make(map[string]*v2node, n)
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("/1/bench/%07d", i)
		kids[p[9:]] = &v2node{Path: p, CreatedIndex: uint64(i + 3), ModifiedIndex: uint64(i + 3), Value: "value-of-some-length"}
	}
	root := &v2node{Path: "/", Children: map[string]*v2node{
		"1": {Path: "/1", CreatedIndex: 1, ModifiedIndex: 1, Children: map[string]*v2node{
			"bench": {Path: "/1/bench", CreatedIndex: 3, ModifiedIndex: 3, Children: kids}}}}}
	data, err := json.Marshal(map[string]any{"Root": root, "CurrentIndex": n + 2})
	if err != nil {
		tb.Fatal(err)
	}
	index := uint64(n + 10)
	rs := raftpb.Snapshot{Data: data, Metadata: raftpb.SnapshotMetadata{Index: index, Term: 2}}
	rb, err := rs.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	snap := appendField(nil, 1, 0)
	snap = binary.AppendUvarint(snap, uint64(crc32.Checksum(rb, crcTable)))
	snap = appendBytes(snap, 2, rb)
	for _, d := range []string{"member/snap", "member/wal"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	if err := os.WriteFile(filepath.Join(dir, "member/snap", fmt.Sprintf("%016x-%016x.snap", 2, index)), snap, 0o644); err != nil {
		tb.Fatal(err)
	}
	hs := raftpb.HardState{Term: 2, Commit: index}
	hb, _ := hs.Marshal()
	var wal []byte
	frame := func(typ int, crc uint32, body []byte) {
		r := appendField(nil, 1, 0)
		r = binary.AppendUvarint(r, uint64(typ))
		r = appendField(r, 2, 0)
		r = binary.AppendUvarint(r, uint64(crc))
		if body != nil {
			r = appendBytes(r, 3, body)
		}
		wal = binary.LittleEndian.AppendUint64(wal, uint64(len(r)))
		wal = append(wal, r...)
	}
	frame(recCRC, 0, nil)
	frame(recState, crc32.Update(0, crcTable, hb), hb)
	if err := os.WriteFile(filepath.Join(dir, "member/wal", "0000000000000000-0000000000000000.wal"), wal, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkLoad1M measures reading and rebuilding a 1M-key v2 store
// (keys/s and the process's peak RSS).
func BenchmarkLoad1M(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	writeSyntheticDataDir(b, dir, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		im, err := Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		if im.StoreIndex != n+2 || im.Nodes != n+1 {
			b.Fatalf("loaded index %d, %d nodes", im.StoreIndex, im.Nodes)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "keys/s")
		im.Close()
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(ru.Maxrss)/1024, "peakRSS-MiB")
}

// TestWriteSyntheticDataDir writes a 1M-key data dir to
// $STRATA_SYNTHETIC_ETCD_DIR for timing `strata import-etcd` end to end.
func TestWriteSyntheticDataDir(t *testing.T) {
	dir := os.Getenv("STRATA_SYNTHETIC_ETCD_DIR")
	if dir == "" {
		t.Skip("set STRATA_SYNTHETIC_ETCD_DIR to write a synthetic 1M-key etcd data dir")
	}
	writeSyntheticDataDir(t, dir, 1_000_000)
}
