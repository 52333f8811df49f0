package backendtest

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/strata-kv/strata/backends"
)

const (
	benchKeys   = 100_000
	benchValLen = 100
)

// benchKey formats key i into buf without allocating: 16 bytes, shaped
// like an etcd v2 path so keys share a prefix as they do in practice.
func benchKey(buf []byte, i int) []byte {
	buf = append(buf[:0], "/v2/keys/"...)
	for d := 1_000_000; d > 0; d /= 10 {
		buf = append(buf, byte('0'+i/d%10))
	}
	return buf
}

// filled opens a backend in b's temp dir holding benchKeys keys at index 1.
func filled(b *testing.B, open Opener) backends.Backend {
	b.Helper()
	be := open(b, b.TempDir())
	b.Cleanup(func() { be.Close() })
	val := bytes.Repeat([]byte("v"), benchValLen)
	err := be.Update(1, func(w backends.Writer) error {
		var k []byte
		for i := 0; i < benchKeys; i++ {
			k = benchKey(k, i)
			if err := w.Put(k, val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("fill: %v", err)
	}
	return be
}

// Bench runs the shared benchmarks against a store of 100k keys with
// 100-byte values. Writes overwrite random existing keys, so the store
// stays the same size however long a benchmark runs.
func Bench(b *testing.B, open Opener) {
	b.Run("Put", func(b *testing.B) { benchPut(b, open, 1) })
	b.Run("Batch100", func(b *testing.B) { benchPut(b, open, 100) })
	b.Run("GetHit", func(b *testing.B) {
		be := filled(b, open)
		rng := rand.New(rand.NewPCG(1, 2))
		var k []byte
		get := func(r backends.Reader) error { // built once: measure the backend, not this closure
			_, err := r.Get(k)
			return err
		}
		b.ReportAllocs()
		for b.Loop() {
			k = benchKey(k, rng.IntN(benchKeys))
			if err := be.View(get); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Ascend1000", func(b *testing.B) {
		be := filled(b, open)
		rng := rand.New(rand.NewPCG(1, 2))
		var k []byte
		n := 0
		count := func(_, _ []byte) bool { n++; return n < 1000 }
		scan := func(r backends.Reader) error { return r.Ascend(k, nil, count) }
		b.ReportAllocs()
		for b.Loop() {
			k, n = benchKey(k, rng.IntN(benchKeys-1000)), 0
			if err := be.View(scan); err != nil || n != 1000 {
				b.Fatalf("ascended %d keys, err %v", n, err)
			}
		}
	})
	b.Run("Snapshot100k", func(b *testing.B) {
		be := filled(b, open)
		var cw countWriter
		b.ReportAllocs()
		for b.Loop() {
			cw = 0
			if err := be.Snapshot(&cw); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(cw))
	})
	b.Run("Restore100k", func(b *testing.B) {
		be := filled(b, open)
		var buf bytes.Buffer
		if err := be.Snapshot(&buf); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(buf.Len()))
		b.ReportAllocs()
		for b.Loop() {
			if err := be.Restore(bytes.NewReader(buf.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchPut measures Updates of batch random overwrites each.
func benchPut(b *testing.B, open Opener, batch int) {
	be := filled(b, open)
	rng := rand.New(rand.NewPCG(1, 2))
	val := bytes.Repeat([]byte("w"), benchValLen)
	index := be.AppliedIndex()
	var k []byte
	write := func(w backends.Writer) error {
		for j := 0; j < batch; j++ {
			k = benchKey(k, rng.IntN(benchKeys))
			if err := w.Put(k, val); err != nil {
				return err
			}
		}
		return nil
	}
	b.ReportAllocs()
	for b.Loop() {
		index++
		if err := be.Update(index, write); err != nil {
			b.Fatalf("Update(%d): %v", index, err)
		}
	}
}

// countWriter discards what it is given and counts it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
