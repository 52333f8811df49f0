package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCorruptionAtStartRefusesToStart: damage found at start (a WAL record
// in the middle of the log, a bbolt page) stops the start with an error
// naming the file and where, never a panic; docs/operations.md says how
// to recover.
func TestCorruptionAtStartRefusesToStart(t *testing.T) {
	cases := []struct {
		name, backend string
		damage        func(t *testing.T, dataDir string)
		want          []string
	}{
		{"wal middle", "memory", func(t *testing.T, dir string) {
			seg := filepath.Join(dir, "member", "wal", "0000000000000000-0000000000000001.wal")
			flip(t, seg, 512)
		}, []string{"0000000000000000-0000000000000001.wal", "wal: corrupt", "invalid data at offset", "followed by a valid record"}},
		{"bbolt page", "bbolt", func(t *testing.T, dir string) {
			db := filepath.Join(dir, "db", "strata.db")
			st, err := os.Stat(db)
			if err != nil {
				t.Fatal(err)
			}
			for off := int64(2 * 4096); off < st.Size(); off += 4096 {
				flip(t, db, off+8) // every page header after the two meta pages
			}
		}, []string{"strata.db fails its consistency check", "page "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := startLogProc(t, dir, filepath.Join(t.TempDir(), "log"), "--backend", tc.backend)
			c := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < 40; i++ {
				if status, _, e, err := putRaw(c, p.url, fmt.Sprintf("/k%02d", i), strings.Repeat("x", 100)); err != nil || status != http.StatusCreated {
					t.Fatalf("put: %d %+v %v", status, e, err)
				}
			}
			p.stop(t)
			tc.damage(t, dir)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, []string{"--data-dir", dir, "--backend", tc.backend, "--listen-client-urls", "http://127.0.0.1:0", "--log-level", "error"}, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("started on a damaged data dir")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("start error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// flip overwrites 8 bytes of file at off with a pattern no record has.
func flip(t *testing.T, file string, off int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("XXXXXXXX"), off); err != nil {
		t.Fatal(err)
	}
}
