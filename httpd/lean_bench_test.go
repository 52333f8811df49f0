package httpd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-kv/strata/engine"
)

// benchPipelined is one connection's cost per request through a Front
// over loopback, 16 requests in flight: head scan, parse, handler,
// response (and the client's parsing of it).
func benchPipelined(b *testing.B, cfg Config, req string) {
	st := newEngineStore(b)
	st.Propose(b.Context(), engine.Command{Op: engine.OpSet, Path: "/a", Value: "1"})
	api := New(cfg, st, fakeCluster{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	f := NewFront(api, &http.Server{Handler: api})
	go f.Serve(ln)
	defer f.Shutdown(b.Context())
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	const depth = 16
	batch := []byte(strings.Repeat(req, depth))
	br := bufio.NewReader(c)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += depth {
		if _, err := c.Write(batch); err != nil {
			b.Fatal(err)
		}
		for range depth {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

const benchGet = "GET /v2/keys/a HTTP/1.1\r\nHost: x\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"

func BenchmarkLeanGet(b *testing.B) { benchPipelined(b, Config{}, benchGet) }

// With etcd's default CORS ("*"): the lean path adds the headers itself.
func BenchmarkLeanGetCORS(b *testing.B) { benchPipelined(b, Config{CORS: []string{"*"}}, benchGet) }

// A write also runs the close watch (a background read) while it waits.
func BenchmarkLeanPut(b *testing.B) {
	benchPipelined(b, Config{}, "PUT /v2/keys/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=2")
}
