package wal

import (
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// BenchmarkSave measures one group-committed batch (entries of 128 bytes +
// HardState) made durable with one fdatasync.
func BenchmarkSave(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("entries=%d", batch), func(b *testing.B) {
			w, _, err := Open(b.TempDir(), 0, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			data := make([]byte, 128)
			es := make([]raftpb.Entry, batch)
			idx := uint64(0)
			b.SetBytes(int64(batch * len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range es {
					idx++
					es[j] = raftpb.Entry{Term: 1, Index: idx, Data: data}
				}
				if err := w.Save(raftpb.HardState{Term: 1, Vote: 1, Commit: idx}, es); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			st := w.Stats()
			b.ReportMetric(float64(st.Fsyncs)/float64(b.N), "fsyncs/op")
			if st.Fsyncs > 0 {
				b.ReportMetric(float64(st.FsyncNanos)/float64(st.Fsyncs)/1e3, "µs/fsync")
			}
		})
	}
}
