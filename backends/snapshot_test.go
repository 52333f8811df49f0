package backends

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

type kv struct{ k, v string }

func encode(t testing.TB, index uint64, recs []kv) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := WriteSnapshot(&buf, index, func(fn func(k, v []byte) error) error {
		for _, r := range recs {
			if err := fn([]byte(r.k), []byte(r.v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	return buf.Bytes()
}

func decode(r io.Reader) (uint64, []kv, error) {
	var out []kv
	idx, err := ReadSnapshot(r, func(k, v []byte) error {
		out = append(out, kv{string(k), string(v)})
		return nil
	})
	return idx, out, err
}

var sampleRecs = []kv{
	{"", "empty key"},
	{"\x00", ""},
	{"\x00\xff", "v"},
	{"a", strings.Repeat("x", 300)}, // multi-byte varint length
	{"a\x00", "y"},
	{"ab", "z"},
	{"\xff\xff", "last"},
}

func TestSnapshotRoundTrip(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<14) // 256 KiB: larger than the read buffer
	cases := []struct {
		name  string
		index uint64
		recs  []kv
	}{
		{"empty", 0, nil},
		{"max index", ^uint64(0), []kv{{"k", "v"}}},
		{"tricky keys", 42, sampleRecs},
		{"big value", 7, []kv{{"a", big}, {"b", big[:70000]}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := encode(t, c.index, c.recs)
			idx, got, err := decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("ReadSnapshot: %v", err)
			}
			if idx != c.index {
				t.Errorf("index = %d, want %d", idx, c.index)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.recs) {
				t.Errorf("records differ:\n got %q\nwant %q", got, c.recs)
			}
			// One byte at a time exercises every refill boundary.
			if _, got, err := decode(&oneByteReader{data}); err != nil || len(got) != len(c.recs) {
				t.Errorf("one-byte reads: %d records, err %v", len(got), err)
			}
		})
	}
}

func TestSnapshotLayout(t *testing.T) {
	data := encode(t, 0x0102, []kv{{"", "v"}})
	want := "STRATASN\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01\x02" + // header
		"\x01" + "" + "\x01v" + // key length 0 stored as 1, value
		"\x00" // end marker
	if got := string(data[:len(data)-4]); got != want {
		t.Fatalf("layout:\n got %q\nwant %q", got, want)
	}
}

func TestSnapshotEveryTruncationFails(t *testing.T) {
	data := encode(t, 9, sampleRecs)
	for n := 0; n < len(data); n++ {
		_, _, err := decode(bytes.NewReader(data[:n]))
		if !errors.Is(err, ErrCorruptSnapshot) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("prefix %d/%d: err = %v, want truncation", n, len(data), err)
		}
	}
}

func TestSnapshotEveryBitFlipFails(t *testing.T) {
	data := encode(t, 9, sampleRecs)
	for i := range data {
		for bit := 0; bit < 8; bit++ {
			bad := bytes.Clone(data)
			bad[i] ^= 1 << bit
			if _, _, err := decode(bytes.NewReader(bad)); !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("flip byte %d bit %d: err = %v, want ErrCorruptSnapshot", i, bit, err)
			}
		}
	}
}

func TestReadSnapshotRejects(t *testing.T) {
	valid := encode(t, 1, []kv{{"a", "1"}})
	hdr := valid[:snapHeader]
	withCRC := func(body string) []byte { // a correct checksum, so only the named defect is wrong
		b := append(bytes.Clone(hdr), body...)
		var cw crcWriter
		cw.w = io.Discard
		cw.Write(b)
		return append(b, byte(cw.sum>>24), byte(cw.sum>>16), byte(cw.sum>>8), byte(cw.sum))
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"bad magic", append([]byte("STRATASX"), valid[8:]...), "bad magic"},
		{"bad version", append(append([]byte("STRATASN"), 0, 0, 0, 2), valid[12:]...), "unsupported version 2"},
		{"unordered keys", withCRC("\x02b\x011\x02a\x011\x00"), "not after"},
		{"duplicate keys", withCRC("\x02a\x011\x02a\x012\x00"), "not after"},
		{"non-minimal varint", withCRC("\x82\x00a\x011\x00"), "non-minimal"},
		{"varint overflow", withCRC("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), "overflows"},
		{"key too long", withCRC("\x82\x80\x40"), "key length"},
		{"value too long", withCRC("\x02a\x81\x80\x80\x80\x04"), "value length"},
		{"huge value truncated", withCRC("\x02a\x80\x80\x80\x80\x04"), "truncated"},
		{"bad checksum", append(bytes.Clone(valid[:len(valid)-1]), valid[len(valid)-1]^1), "checksum"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := decode(bytes.NewReader(c.data))
			if !errors.Is(err, ErrCorruptSnapshot) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrCorruptSnapshot mentioning %q", err, c.want)
			}
		})
	}
}

func TestReadSnapshotPropagatesErrors(t *testing.T) {
	data := encode(t, 1, sampleRecs)
	errBoom := errors.New("boom")
	_, err := ReadSnapshot(bytes.NewReader(data), func(k, v []byte) error { return errBoom })
	if !errors.Is(err, errBoom) || errors.Is(err, ErrCorruptSnapshot) {
		t.Errorf("fn error: got %v", err)
	}
	_, err = ReadSnapshot(io.MultiReader(bytes.NewReader(data[:10]), errReader{errBoom}), func(k, v []byte) error { return nil })
	if !errors.Is(err, errBoom) || errors.Is(err, ErrCorruptSnapshot) {
		t.Errorf("reader error: got %v", err)
	}
}

func TestWriteSnapshotRejects(t *testing.T) {
	errBoom := errors.New("boom")
	cases := []struct {
		name string
		each func(fn func(k, v []byte) error) error
		want string
	}{
		{"unordered", func(fn func(k, v []byte) error) error {
			fn([]byte("b"), nil)
			return fn([]byte("a"), nil)
		}, "strictly ascending"},
		{"duplicate", func(fn func(k, v []byte) error) error {
			fn([]byte("a"), nil)
			return fn([]byte("a"), nil)
		}, "strictly ascending"},
		{"swallowed error", func(fn func(k, v []byte) error) error {
			fn([]byte("b"), nil)
			fn([]byte("a"), nil) // error ignored by a sloppy iterator
			return nil
		}, "strictly ascending"},
		{"key too long", func(fn func(k, v []byte) error) error {
			return fn(make([]byte, MaxSnapshotKeySize+1), nil)
		}, "exceeds"},
		{"iterator fails", func(fn func(k, v []byte) error) error { return errBoom }, "boom"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteSnapshot(&buf, 1, c.each)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want mention of %q", err, c.want)
			}
			if _, _, err := decode(&buf); err == nil {
				t.Fatal("output of a failed WriteSnapshot reads back as valid")
			}
		})
	}
	// A failing writer surfaces its error.
	err := WriteSnapshot(errWriter{errBoom}, 1, func(fn func(k, v []byte) error) error { return nil })
	if !errors.Is(err, errBoom) {
		t.Errorf("writer error: got %v", err)
	}
}

func FuzzReadSnapshot(f *testing.F) {
	f.Add(encode(f, 0, nil))
	f.Add(encode(f, 42, sampleRecs))
	f.Add(encode(f, 3, []kv{{"a", strings.Repeat("v", 5000)}}))
	f.Add([]byte("STRATASN\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []kv
		idx, err := ReadSnapshot(bytes.NewReader(data), func(k, v []byte) error {
			recs = append(recs, kv{string(k), string(v)})
			return nil
		})
		if err != nil {
			return
		}
		// The encoding is canonical: what was accepted re-encodes to the same bytes.
		if again := encode(t, idx, recs); !bytes.HasPrefix(data, again) {
			t.Fatalf("accepted stream does not re-encode identically")
		}
	})
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], r.b = r.b[0], r.b[1:]
	return 1, nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }
