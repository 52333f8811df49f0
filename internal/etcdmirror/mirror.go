// Package etcdmirror keeps a Strata engine in step with a running etcd's
// v2 key space over etcd's own API: one recursive GET at an index, then
// every event after it, each applied at the index etcd gave it, until the
// operator cuts over. It is the fallback for when the data dir cannot be
// read (package etcddata); what the API cannot show it cannot carry:
// hidden ('_') nodes that exist before the GET and are never changed
// after it, auth users and roles, and etcd's history before the GET.
//
// Indexes no watch shows (membership and auth writes, TTL refreshes, which
// etcd never notifies) are advanced over; hidden nodes written while the
// mirror follows are found in etcd's history, which does show them. A
// refresh is learnt from the next event on the node (its prevNode) or, at
// the cut-over, from one more recursive GET.
package etcdmirror

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/strata-kv/strata/backends/memory"
	"github.com/strata-kv/strata/engine"
)

// Config says which etcd to mirror and how to reach it.
type Config struct {
	Endpoints []string // etcd client URLs (members of one cluster)
	TLS       *tls.Config
	Username  string // with Password: basic auth, when etcd has v2 auth on
	Password  string
	// SkipAuth allows mirroring an etcd with v2 auth enabled: its users
	// and roles are not carried (the API does not show password hashes).
	SkipAuth bool
	Log      *slog.Logger
}

// Stats are what a mirror has done so far.
type Stats struct {
	StartIndex uint64 // etcd's index at the recursive GET the mirror began from
	Nodes      int    // nodes that GET carried
	Events     int    // events applied since
	Hidden     int    // of them, events on hidden nodes (found in etcd's history)
	Skipped    uint64 // indexes advanced over: writes no watch shows
	Patched    int    // nodes corrected from a prevNode or the cut-over GET
	Dropped    int    // nodes the cut-over GET no longer had
	Restarts   int    // times the mirror fell behind etcd's history and began again
	Index      uint64 // the mirror's index
	EtcdIndex  uint64 // etcd's index as last seen
}

// Mirror is a Strata engine following one etcd cluster's v2 key space.
type Mirror struct {
	cfg Config
	c   *client
	log *slog.Logger

	mu    sync.Mutex // guards stats and eng for Stats and Engine
	stats Stats
	eng   *engine.Engine
	seq   uint64 // applied index of the engine's backend updates
	f     *feed  // the live stream of etcd's events, read ahead
	// unsure is set when the mirror may differ from etcd in a way only a
	// full read shows: an index no watch explained, or an event that did
	// not apply as it did in etcd.
	unsure bool
}

// Start reads etcd's key space with one recursive GET and returns a
// mirror at that index, ready to Follow.
func Start(ctx context.Context, cfg Config) (*Mirror, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcdmirror: no endpoints")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	eps := make([]string, len(cfg.Endpoints))
	for i, e := range cfg.Endpoints {
		eps[i] = strings.TrimRight(e, "/")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.TLS, Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4}}
	m := &Mirror{cfg: cfg, log: cfg.Log, c: &client{http: hc, endpoints: eps, user: cfg.Username, password: cfg.Password}}
	on, err := m.c.authEnabled(ctx)
	if err != nil {
		return nil, err
	}
	if on && !cfg.SkipAuth {
		return nil, fmt.Errorf("%s has v2 auth enabled: its users' password hashes cannot be read over the API (import the stopped member's data dir with --etcd-data-dir to carry them, or pass --skip-auth with root's --username and set up auth on Strata afterwards)", m.c.endpoint())
	}
	if err := m.begin(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Engine is the engine holding the mirrored key space. It is replaced when
// the mirror begins again, so call it after the cut-over.
func (m *Mirror) Engine() *engine.Engine {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.eng
}

// Stats returns a copy of the mirror's counters.
func (m *Mirror) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats
	if m.eng != nil {
		st.Index = m.eng.Index()
	}
	return st
}

func (m *Mirror) count(f func(*Stats)) {
	m.mu.Lock()
	f(&m.stats)
	m.mu.Unlock()
}

// readTree is etcd's whole visible key space at one index.
func (m *Mirror) readTree(ctx context.Context) (*engine.Node, uint64, error) {
	a, err := m.c.get(ctx, "/v2/keys/", url.Values{"recursive": {"true"}, "sorted": {"true"}, "quorum": {"true"}})
	if err != nil {
		return nil, 0, err
	}
	if a.err != nil {
		return nil, 0, fmt.Errorf("recursive GET of %s: %d %s (%s)", m.c.endpoint(), a.err.ErrorCode, a.err.Message, a.err.Cause)
	}
	if a.event.Node == nil || !a.event.Node.Dir || a.index == 0 {
		return nil, 0, fmt.Errorf("recursive GET of %s: not etcd's answer for /", m.c.endpoint())
	}
	return a.event.Node, a.index, nil
}

// begin (re)builds the mirror from one recursive GET, opening the live
// stream first so that no event after the GET's index is missed.
func (m *Mirror) begin(ctx context.Context) error {
	start, err := m.openFeed(ctx)
	if err != nil {
		return err
	}
	root, index, err := m.readTree(ctx)
	if err != nil {
		m.stopFeed()
		return err
	}
	if index < start {
		m.stopFeed()
		return fmt.Errorf("recursive GET of %s answered at index %d, before its watch began (%d)", m.c.endpoint(), index, start)
	}
	nodes := seedNodes(root, nil)
	eng, err := engine.Open(memory.New(), engine.Options{})
	if err != nil {
		return err
	}
	if err := eng.Seed(1, index, nodes); err != nil {
		return fmt.Errorf("seed from %s at index %d: %w", m.c.endpoint(), index, err)
	}
	m.mu.Lock()
	m.eng, m.seq, m.unsure = eng, 1, false
	m.stats.StartIndex, m.stats.Nodes, m.stats.EtcdIndex = index, len(nodes), index
	m.mu.Unlock()
	m.log.Info("mirror began", "endpoint", m.c.endpoint(), "index", index, "nodes", len(nodes))
	return nil
}

// openFeed replaces the live stream with a new one and returns the index
// it starts after. The stream outlives ctx: CutOver stops it.
func (m *Mirror) openFeed(ctx context.Context) (uint64, error) {
	m.stopFeed()
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	start, next, closer, err := m.c.stream(fctx)
	if err != nil {
		cancel()
		return 0, err
	}
	m.f = startFeed(next, closer, fctx, cancel)
	return start, nil
}

func (m *Mirror) stopFeed() {
	if m.f != nil {
		m.f.stop()
		m.f = nil
	}
}

// seedNodes lists the nodes below n (not n itself), parents first.
func seedNodes(n *engine.Node, out []engine.SeedNode) []engine.SeedNode {
	for _, c := range n.Nodes {
		out = append(out, seedOf(c))
		if c.Dir {
			out = seedNodes(c, out)
		}
	}
	return out
}

func seedOf(n *engine.Node) engine.SeedNode {
	s := engine.SeedNode{Path: n.Key, Dir: n.Dir, Created: n.CreatedIndex, Modified: n.ModifiedIndex}
	if n.Value != nil {
		s.Value = *n.Value
	}
	if n.Expiration != nil {
		s.Expiry = n.Expiration.UnixNano()
	}
	return s
}

// next is the first index the mirror has not applied.
func (m *Mirror) next() uint64 { return m.eng.Index() + 1 }

// Follow applies etcd's events as they come until ctx ends (then it
// returns nil). When the stream ends (etcd restarted, an endpoint failed)
// a new one is opened, on the next endpoint, and the events between are
// read from etcd's history; past its 1000 events the mirror begins again
// from a new recursive GET.
func (m *Mirror) Follow(ctx context.Context) error {
	for ctx.Err() == nil {
		if m.f == nil { // a resume failed: try again
			if err := m.resume(ctx); err != nil && ctx.Err() == nil {
				m.warn(err)
				m.c.failover()
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		answers, ended := m.f.take()
		for _, a := range answers {
			if err := m.take(ctx, a); err != nil {
				return err
			}
		}
		switch {
		case len(answers) > 0:
		case ended != nil:
			m.warn(fmt.Errorf("%s: %w", m.c.endpoint(), ended))
			m.c.failover()
			m.stopFeed()
		default:
			select {
			case <-ctx.Done():
			case <-m.f.ready:
			case <-time.After(idleCheck):
				if m.streamStale(ctx) {
					m.log.Warn("etcd stopped sending on the watch stream (it drops a watcher that falls 100 events behind and says nothing); opening another")
					m.stopFeed()
				}
			}
		}
	}
	return nil
}

// idleCheck is how long a silent stream goes before the mirror asks etcd
// whether it has missed something.
const idleCheck = 2 * time.Second

// streamStale reports whether etcd's history holds an event after the
// mirror's index that the stream has not delivered: etcd 3.4 stops feeding
// a stream watcher that fell behind without ending the response.
func (m *Mirror) streamStale(ctx context.Context) bool {
	e, err := m.etcdIndex(ctx)
	if err != nil || e < m.next() {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, pause)
	defer cancel()
	a, err := m.c.get(wctx, "/v2/keys/", m.waitQuery(m.next()))
	if err != nil {
		return false // nothing visible after the mirror's index: writes no watch shows
	}
	return a.err != nil || (a.event.Node != nil && a.event.Node.ModifiedIndex <= e)
}

// resume opens a new stream and reads what came before it from etcd's
// history, or begins again when the history no longer reaches back.
func (m *Mirror) resume(ctx context.Context) error {
	start, err := m.openFeed(ctx)
	if err != nil {
		return err
	}
	if err := m.drain(ctx, start); errors.Is(err, errCleared) {
		m.log.Warn("mirror fell behind etcd's event history; beginning again from a new GET", "index", m.eng.Index(), "etcd index", start)
		m.count(func(s *Stats) { s.Restarts++ })
		return m.begin(ctx)
	} else if err != nil {
		return err
	}
	return nil
}

func (m *Mirror) warn(err error) { m.log.Warn("etcd endpoint failed; trying the next", "err", err) }

func (m *Mirror) waitQuery(index uint64) url.Values {
	return url.Values{"wait": {"true"}, "recursive": {"true"}, "waitIndex": {fmt.Sprint(index)}}
}

// take applies one watch answer. An answer past the next index may have
// passed over hidden nodes, which a waiting watch skips but etcd's history
// holds: the history is asked once more from the next index first.
func (m *Mirror) take(ctx context.Context, a *answer) error {
	if a.err != nil {
		if a.err.ErrorCode == engine.EcodeEventIndexCleared {
			return errCleared
		}
		return fmt.Errorf("watch %s from %d: %d %s (%s)", m.c.endpoint(), m.next(), a.err.ErrorCode, a.err.Message, a.err.Cause)
	}
	ev := &a.event
	if ev.Node == nil {
		return fmt.Errorf("watch %s from %d: an event without a node", m.c.endpoint(), m.next())
	}
	m.count(func(s *Stats) { s.EtcdIndex = max(s.EtcdIndex, a.index, ev.Node.ModifiedIndex) })
	for idx := ev.Node.ModifiedIndex; idx > m.next(); {
		h, err := m.c.retry(ctx, "/v2/keys/", m.waitQuery(m.next()), m.warn)
		if err != nil {
			return nil // ctx ended: the cut-over's drain reads ev again from etcd's history
		}
		if h.err != nil && h.err.ErrorCode == engine.EcodeEventIndexCleared {
			m.unsure = true // hidden nodes written in the gap cannot be learnt now
		}
		hn := h.event.Node
		if h.err != nil || hn == nil || hn.ModifiedIndex < m.next() || hn.ModifiedIndex >= idx {
			break // nothing in etcd's history before ev: the gap is writes no watch shows
		}
		if err := m.apply(&h.event); err != nil {
			return err
		}
	}
	return m.apply(ev)
}

// apply puts one etcd event into the engine at etcd's index: the mirror's
// node is first made what etcd's prevNode says it was, then the write is
// replayed as the operation that gives etcd's action, without conditions.
func (m *Mirror) apply(ev *etcdEvent) error {
	idx := ev.Node.ModifiedIndex
	cur := m.eng.Index()
	if idx <= cur {
		return nil // seen already (an answer repeated after a failover)
	}
	if idx > cur+1 {
		m.seq++
		if err := m.eng.Advance(m.seq, idx-1); err != nil {
			return err
		}
		m.unsure = true
		m.count(func(s *Stats) { s.Skipped += idx - 1 - cur })
	}
	if ev.PrevNode != nil {
		if err := m.agree(ev.PrevNode); err != nil {
			return err
		}
	}
	cmd, ok := command(ev)
	if !ok {
		return fmt.Errorf("event %d: unknown action %q", idx, ev.Action)
	}
	m.seq++
	res, err := m.eng.ApplyBatch(m.seq, []engine.Command{cmd})
	if err != nil {
		return err
	}
	got := m.eng.Index()
	var out *engine.Event
	if res[0].Event != nil {
		out = res[0].Event
	}
	if res[0].Err != nil || got != idx || (out != nil && (out.Action != ev.Action || out.Node.Key != ev.Node.Key)) {
		m.unsure = true
		m.log.Warn("an etcd event did not apply as in etcd; the cut-over will compare the whole key space", "index", idx, "action", ev.Action, "key", ev.Node.Key, "result", res[0].Err, "mirror index", got)
		if got < idx {
			m.seq++
			if err := m.eng.Advance(m.seq, idx); err != nil {
				return err
			}
		}
	}
	hidden := strings.Contains(ev.Node.Key, "/_")
	m.count(func(s *Stats) {
		s.Events++
		if hidden {
			s.Hidden++
		}
	})
	return nil
}

// command is the engine operation whose event is etcd's ev. Comparisons
// have already been decided by etcd; the mirror's own prevIndex is used so
// a compare-and-swap or -delete applies and reports its action.
func command(ev *etcdEvent) (engine.Command, bool) {
	n := ev.Node
	c := engine.Command{Path: n.Key, Dir: n.Dir}
	if n.Value != nil {
		c.Value = *n.Value
	}
	if n.Expiration != nil {
		c.Expiration = n.Expiration.UnixNano()
	}
	var prevIndex uint64
	if ev.PrevNode != nil {
		prevIndex = ev.PrevNode.ModifiedIndex
	}
	switch ev.Action {
	case engine.ActionSet:
		c.Op = engine.OpSet
	case engine.ActionCreate:
		c.Op = engine.OpCreate
	case engine.ActionUpdate:
		c.Op = engine.OpUpdate
	case engine.ActionCompareAndSwap:
		c.Op, c.PrevIndex = engine.OpCAS, prevIndex
	case engine.ActionDelete:
		c.Op, c.Recursive, c.Value = engine.OpDelete, n.Dir, ""
	case engine.ActionCompareAndDelete:
		c.Op, c.PrevIndex, c.Value = engine.OpCAD, prevIndex, ""
	case engine.ActionExpire:
		c.Op, c.Time, c.Value, c.Expiration = engine.OpExpire, 1<<63-1, "", 0
		if ev.PrevNode != nil && ev.PrevNode.Expiration != nil {
			c.Time = ev.PrevNode.Expiration.UnixNano()
		}
	default:
		return c, false
	}
	return c, true
}

// agree makes the mirror's node at prev.Key what etcd says it was before
// an event: a TTL refresh etcd did not notify, or a hidden node the first
// GET could not list, is learnt here.
func (m *Mirror) agree(prev *engine.Node) error {
	want := seedOf(prev)
	got, err := m.eng.Get(prev.Key, false, false)
	var have *engine.Node
	if err == nil {
		have = got.Node
	} else if !engine.IsCode(err, engine.EcodeKeyNotFound) {
		return err
	}
	if have != nil && same(have, prev) {
		return nil
	}
	var nodes []engine.SeedNode
	for _, dir := range ancestors(prev.Key) {
		if _, err := m.eng.Get(dir, false, false); engine.IsCode(err, engine.EcodeKeyNotFound) {
			nodes = append(nodes, engine.SeedNode{Path: dir, Dir: true, Created: want.Created, Modified: want.Created})
		}
	}
	m.seq++
	if have != nil && have.Dir != prev.Dir {
		if err := m.eng.DropTree(m.seq, prev.Key); err != nil {
			return err
		}
	}
	if err := m.eng.Patch(m.seq, append(nodes, want)); err != nil {
		return err
	}
	m.count(func(s *Stats) { s.Patched++ })
	return nil
}

// same compares what a mirror carries of a node: not the TTL countdown or
// a directory's listing.
func same(a, b *engine.Node) bool {
	if a.Dir != b.Dir || a.CreatedIndex != b.CreatedIndex || a.ModifiedIndex != b.ModifiedIndex {
		return false
	}
	if (a.Value == nil) != (b.Value == nil) || (a.Value != nil && *a.Value != *b.Value) {
		return false
	}
	if (a.Expiration == nil) != (b.Expiration == nil) || (a.Expiration != nil && !a.Expiration.Equal(*b.Expiration)) {
		return false
	}
	return true
}

// ancestors are the directories above p, outermost first ("/a/b/c": /a, /a/b).
func ancestors(p string) []string {
	var out []string
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

// pause is how long the cut-over waits for an event it expects from etcd's
// history; a watch with nothing at or after its index would wait forever.
const pause = time.Second

// Endpoint is the etcd client URL the mirror reads from now.
func (m *Mirror) Endpoint() string { return m.c.endpoint() }
