package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// watchKey is the key watcher i waits on: keys watchers share them round
// robin (1 = all on one key).
func watchKey(i, keys int) string { return "/siege/w" + strconv.Itoa(i%keys) }

// watchStats counts the idle watchers.
type watchStats struct {
	waiting  atomic.Int64 // watches registered (200 + headers received), not yet answered
	started  atomic.Int64 // watch requests that got their headers (retries included)
	answered atomic.Int64 // watches that received the wake event for their key
	wrong    atomic.Int64 // watches answered with something else
	errs     atomic.Int64 // transport errors before an answer (then retried)

	mu       sync.Mutex
	refused  map[int]int64 // non-200 statuses (e.g. 429), retried
	firstErr string
}

func (w *watchStats) fail(code int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.errs.Add(1)
		if w.firstErr == "" {
			w.firstErr = err.Error()
		}
		return
	}
	if w.refused == nil {
		w.refused = map[int]int64{}
	}
	w.refused[code]++
}

// checkEvent reports whether body is the v2 event of a set on key.
func checkEvent(body []byte, key string) error {
	var ev struct {
		Action string `json:"action"`
		Node   struct {
			Key string `json:"key"`
		} `json:"node"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return fmt.Errorf("watch answer %q: %w", body, err)
	}
	if ev.Action != "set" || ev.Node.Key != key {
		return fmt.Errorf("watch on %s answered %s on %s", key, ev.Action, ev.Node.Key)
	}
	return nil
}

// watcher waits for one event on key, re-watching after errors and
// refusals, until it has its answer or ctx ends. do performs one watch
// request and returns its status and, once the headers are in, calls
// registered before it blocks on the body.
type watchDo func(ctx context.Context, key string, registered func()) (code int, body []byte, err error)

func runWatcher(ctx context.Context, key string, do watchDo, st *watchStats) {
	for ctx.Err() == nil {
		reg := false
		code, body, err := do(ctx, key, func() {
			reg = true
			st.started.Add(1)
			st.waiting.Add(1)
		})
		if reg {
			st.waiting.Add(-1)
		}
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			st.fail(0, err)
		case code != http.StatusOK:
			st.fail(code, nil)
		case checkEvent(body, key) == nil:
			st.answered.Add(1)
			return
		default:
			st.wrong.Add(1)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// h1Watch watches over its own raw HTTP/1.1 connection to addr.
func h1Watch(addr string) watchDo {
	return func(ctx context.Context, key string, registered func()) (int, []byte, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return 0, nil, err
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
		defer stop()
		if _, err := io.WriteString(c, "GET /v2/keys"+key+"?wait=true HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
			return 0, nil, err
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/keys"+key+"?wait=true", nil)
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), req)
		if err != nil {
			return 0, nil, err
		}
		return readWatch(resp, registered)
	}
}

// h2cTransports returns n HTTP/2 prior-knowledge transports: each keeps
// one connection that carries its share of the watches.
func h2cTransports(n int) []*http.Transport {
	ts := make([]*http.Transport, n)
	for i := range ts {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		ts[i] = &http.Transport{Protocols: p, Proxy: nil,
			HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1 << 20}}
	}
	return ts
}

func h2cWatch(target string, tr *http.Transport) watchDo {
	cl := &http.Client{Transport: tr}
	return func(ctx context.Context, key string, registered func()) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+"/v2/keys"+key+"?wait=true", nil)
		if err != nil {
			return 0, nil, err
		}
		resp, err := cl.Do(req)
		if err != nil {
			return 0, nil, err
		}
		return readWatch(resp, registered)
	}
}

// readWatch reads a watch's answer, counting the watch as registered once
// its status is 200.
func readWatch(resp *http.Response, registered func()) (int, []byte, error) {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		registered()
	}
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
