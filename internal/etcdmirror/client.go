package etcdmirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/strata-kv/strata/engine"
)

// client speaks the part of etcd's v2 keys API a mirror needs, to one
// member at a time, moving to the next endpoint when one fails.
type client struct {
	http      *http.Client
	endpoints []string
	cur       int
	user      string
	password  string
}

// answer is a keys API response: an event, or etcd's error JSON.
type answer struct {
	status int
	index  uint64 // X-Etcd-Index
	event  etcdEvent
	err    *engine.Error
}

type etcdEvent struct {
	Action   string       `json:"action"`
	Node     *engine.Node `json:"node"`
	PrevNode *engine.Node `json:"prevNode"`
}

// maxBody bounds one answer: a recursive GET of a large key space is the
// largest (about 150 bytes a key).
const maxBody = 4 << 30

func (c *client) endpoint() string { return c.endpoints[c.cur] }

// failover moves to the next endpoint after a transport error.
func (c *client) failover() { c.cur = (c.cur + 1) % len(c.endpoints) }

// get sends GET path?query to the current endpoint. A transport failure or
// an answer that is neither an event nor etcd's error JSON is an error.
func (c *client) get(ctx context.Context, path string, q url.Values) (*answer, error) {
	u := c.endpoint() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	a := &answer{status: resp.StatusCode}
	if h := resp.Header.Get("X-Etcd-Index"); h != "" {
		if a.index, err = strconv.ParseUint(h, 10, 64); err != nil {
			return nil, fmt.Errorf("GET %s: X-Etcd-Index %q: %w", u, h, err)
		}
	}
	if resp.StatusCode >= 300 {
		var e engine.Error
		if err := json.Unmarshal(body, &e); err != nil || e.ErrorCode == 0 {
			return nil, fmt.Errorf("GET %s: %s: %.200q", u, resp.Status, body)
		}
		a.err = &e
		return a, nil
	}
	if err := json.Unmarshal(body, &a.event); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return a, nil
}

// stream opens a streaming recursive watch of the key space from etcd's
// next index (no waitIndex: etcd registers the watcher at once, so no
// event after the index it answers with is missed, however long the
// caller then takes) and returns that index; next decodes each event.
// etcd 3.4 answers a stream from its history with one event only, which
// is why a mirror never streams from a past index.
func (c *client) stream(ctx context.Context) (start uint64, next func() (*answer, error), closer func(), err error) {
	u := c.endpoint() + "/v2/keys/?wait=true&recursive=true&stream=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	h := resp.Header.Get("X-Etcd-Index")
	if start, err = strconv.ParseUint(h, 10, 64); err != nil || resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return 0, nil, nil, fmt.Errorf("watch %s: %s, X-Etcd-Index %q", u, resp.Status, h)
	}
	dec := json.NewDecoder(resp.Body)
	next = func() (*answer, error) {
		a := &answer{status: resp.StatusCode, index: start}
		if err := dec.Decode(&a.event); err != nil {
			return nil, fmt.Errorf("watch %s: %w", u, err)
		}
		return a, nil
	}
	return start, next, func() { resp.Body.Close() }, nil
}

// retry calls get until it answers, moving across endpoints with a pause
// after each failure, until ctx ends.
func (c *client) retry(ctx context.Context, path string, q url.Values, warn func(error)) (*answer, error) {
	for {
		a, err := c.get(ctx, path, q)
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		warn(fmt.Errorf("%s: %w", c.endpoint(), err))
		c.failover()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// authEnabled asks etcd whether v2 auth is on (GET /v2/auth/enable).
func (c *client) authEnabled(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint()+"/v2/auth/enable", nil)
	if err != nil {
		return false, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var st struct {
		Enabled *bool `json:"enabled"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&st); err != nil || st.Enabled == nil {
		return false, fmt.Errorf("GET %s/v2/auth/enable: %s: not etcd's v2 auth answer", c.endpoint(), resp.Status)
	}
	return *st.Enabled, nil
}

// errCleared is etcd's 401: the watch asked for an index older than
// etcd's 1000-event history.
var errCleared = errors.New("etcd's event history no longer reaches the next index")
