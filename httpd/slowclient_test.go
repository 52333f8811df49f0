package httpd

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// A client that connects and never sends a byte is cut after the read
// header timeout, as net/http does, not after the (much longer) idle
// timeout; one that sent a request and went quiet keeps the idle timeout.
func TestSilentConnectionGetsHeaderTimeout(t *testing.T) {
	api := New(Config{}, newEngineStore(t), fakeCluster{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(api)
	hs.ReadHeaderTimeout, hs.IdleTimeout = 100*time.Millisecond, time.Hour
	f := NewFront(api, hs)
	go f.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		api.Close()
		f.Shutdown(ctx)
	})
	addr := ln.Addr().String()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a guard, not a measurement
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != 0 {
		t.Fatalf("silent connection: read %d bytes, err %v; want a clean close with nothing sent", n, err)
	}

	// After one answered request the connection waits under the idle
	// timeout (an hour): still open after several header timeouts.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "GET /v2/keys/ HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 4096)
	if _, err := c2.Read(buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	io.WriteString(c2, "GET /v2/keys/ HTTP/1.1\r\nHost: x\r\n\r\n")
	c2.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c2.Read(buf); err != nil || string(buf[:12]) != "HTTP/1.1 200" {
		t.Fatalf("keep-alive connection after a pause: %q, %v", buf[:n], err)
	}
	if got := f.fastServed.Load(); got != 2 {
		t.Fatalf("lean path answered %d requests, want 2", got)
	}
}
