package bench_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/httpd"
	"github.com/strata-kv/strata/server"
)

func startMember(b *testing.B, backend string) *server.Server {
	b.Helper()
	peer := []string{"http://127.0.0.1:2380"}
	srv, err := server.Start(server.Config{
		Name: "bench", DataDir: b.TempDir(), Backend: backend, PeerURLs: peer,
		InitialPeers: map[string][]string{"bench": peer},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Stop() })
	return srv
}

func reportFsyncs(b *testing.B, srv *server.Server, before func() (uint64, time.Duration)) {
	n0, d0 := before()
	st := srv.ReplicaStatus()
	if n := st.Fsyncs - n0; n > 0 {
		b.ReportMetric(float64(n)/float64(b.N), "fsyncs/op")
		b.ReportMetric(float64((st.FsyncTotal-d0)/time.Duration(n))/1e3, "us/fsync")
	}
}

// BenchmarkProposeSerial is one durable write at a time, without HTTP:
// the raft loop, one WAL fdatasync, the engine apply and the answer.
func BenchmarkProposeSerial(b *testing.B) {
	srv := startMember(b, "memory")
	st := srv.ReplicaStatus()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := srv.Propose(context.Background(), engine.Command{Op: engine.OpSet, Path: "/k", Value: "v"}); err != nil {
			b.Fatal(err)
		}
	}
	reportFsyncs(b, srv, func() (uint64, time.Duration) { return st.Fsyncs, st.FsyncTotal })
}

// BenchmarkHTTPSerial is one client doing PUT (or GET) after PUT over
// loopback HTTP/1.1 against an in-process member: the whole request path.
func BenchmarkHTTPSerial(b *testing.B) {
	for _, method := range []string{"PUT", "GET"} {
		b.Run(method, func(b *testing.B) {
			srv := startMember(b, "memory")
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			hs := &http.Server{Handler: httpd.New(httpd.Config{}, srv, srv)}
			go hs.Serve(ln)
			defer hs.Close()
			c := &http.Client{}
			url := "http://" + ln.Addr().String() + "/v2/keys/k"
			do := func(method string) {
				req, _ := http.NewRequest(method, url, strings.NewReader("value=v"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					b.Fatalf("%s: %d", method, resp.StatusCode)
				}
			}
			do("PUT")
			st := srv.ReplicaStatus()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				do(method)
			}
			reportFsyncs(b, srv, func() (uint64, time.Duration) { return st.Fsyncs, st.FsyncTotal })
		})
	}
}

// BenchmarkProposeParallel16 is 16 concurrent writers without HTTP: how
// group commit batches them (fsyncs/op) and what the raft path sustains.
func BenchmarkProposeParallel16(b *testing.B) {
	srv := startMember(b, "memory")
	st := srv.ReplicaStatus()
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 writers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := srv.Propose(context.Background(), engine.Command{Op: engine.OpSet, Path: "/k", Value: "v"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportFsyncs(b, srv, func() (uint64, time.Duration) { return st.Fsyncs, st.FsyncTotal })
}
