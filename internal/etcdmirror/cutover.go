package etcdmirror

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"

	"github.com/strata-kv/strata/engine"
)

// cutOverTries is how often the cut-over starts again when etcd moved on
// while it ran, before it gives up.
const cutOverTries = 5

// CutOver brings the mirror to etcd's current index and saves its event
// history into the engine: call it once the clients have stopped writing
// to etcd. When the mirror passed over indexes it could not explain (a TTL
// refresh, which etcd never shows a watch) or an event did not apply as
// it did in etcd, one more recursive GET is compared with the mirror and
// every node that differs is corrected. It fails, leaving the mirror as it
// was, when etcd keeps taking writes: no write etcd acknowledged is left
// behind.
func (m *Mirror) CutOver(ctx context.Context) error {
	if err := m.consume(ctx); err != nil {
		return err
	}
	m.stopFeed()
	if err := m.consume(ctx); err != nil {
		return err
	}
	var first, last uint64
	for try := 0; try < cutOverTries; try++ {
		e, err := m.etcdIndex(ctx)
		if err != nil {
			return err
		}
		if try == 0 {
			first = e
		}
		last = e
		if err := m.drain(ctx, e); errors.Is(err, errCleared) {
			m.count(func(s *Stats) { s.Restarts++ })
			if err := m.begin(ctx); err != nil {
				return err
			}
			m.stopFeed() // the drain reads etcd's history from here
			continue
		} else if err != nil {
			return err
		}
		if m.eng.Index() > e {
			continue // etcd moved on while draining
		}
		if m.unsure {
			root, at, err := m.readTree(ctx)
			if err != nil {
				return err
			}
			if at != e {
				continue
			}
			if err := m.reconcile(root); err != nil {
				return err
			}
		}
		if again, err := m.etcdIndex(ctx); err != nil {
			return err
		} else if again != e {
			continue
		}
		if m.eng.Index() < e {
			m.seq++
			cur := m.eng.Index()
			if err := m.eng.Advance(m.seq, e); err != nil {
				return err
			}
			m.count(func(s *Stats) { s.Skipped += e - cur })
		}
		m.count(func(s *Stats) { s.EtcdIndex = e })
		m.seq++
		return m.eng.SaveHistory(m.seq)
	}
	return fmt.Errorf("etcd took writes during each of %d cut-over attempts (index %d, then %d): stop the clients writing to etcd and cut over again", cutOverTries, first, last)
}

// consume applies what the stream has read ahead.
func (m *Mirror) consume(ctx context.Context) error {
	if m.f == nil {
		return nil
	}
	answers, _ := m.f.take()
	for _, a := range answers {
		if err := m.take(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// etcdIndex is etcd's index now, from a quorum read of a node that does
// not exist.
func (m *Mirror) etcdIndex(ctx context.Context) (uint64, error) {
	a, err := m.c.get(ctx, "/v2/keys/_strata_cutover_probe", url.Values{"quorum": {"true"}})
	if err != nil {
		return 0, err
	}
	if a.index == 0 {
		return 0, fmt.Errorf("%s answered without X-Etcd-Index", m.c.endpoint())
	}
	return a.index, nil
}

// drain applies the events up to index e, each answered from etcd's
// history; a watch that waits longer than pause has nothing left to give.
func (m *Mirror) drain(ctx context.Context, e uint64) error {
	for m.next() <= e {
		wctx, cancel := context.WithTimeout(ctx, pause)
		a, err := m.c.get(wctx, "/v2/keys/", m.waitQuery(m.next()))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if wctx.Err() != nil {
				break // nothing visible up to e: the rest are indexes no watch shows
			}
			return err
		}
		if a.err == nil && a.event.Node != nil && a.event.Node.ModifiedIndex > e {
			break
		}
		if err := m.take(ctx, a); err != nil {
			return err
		}
	}
	if cur := m.eng.Index(); cur < e {
		m.unsure = true // what those indexes did, only a full read can tell
	}
	return nil
}

// reconcile makes the mirror's visible key space etcd's root: nodes that
// differ are patched, nodes etcd no longer has are dropped.
func (m *Mirror) reconcile(root *engine.Node) error {
	mine, err := m.eng.Get("/", true, true)
	if err != nil {
		return err
	}
	have := map[string]*engine.Node{}
	var index func(n *engine.Node)
	index = func(n *engine.Node) {
		for _, c := range n.Nodes {
			have[c.Key] = c
			index(c)
		}
	}
	index(mine.Node)
	var patch []engine.SeedNode
	var drop []string
	var walk func(n *engine.Node)
	walk = func(n *engine.Node) {
		for _, c := range n.Nodes {
			h := have[c.Key]
			delete(have, c.Key)
			if h == nil || !same(h, c) {
				if h != nil && h.Dir != c.Dir {
					drop = append(drop, c.Key)
				}
				patch = append(patch, seedOf(c))
			}
			walk(c)
		}
	}
	walk(root)
	gone := make([]string, 0, len(have))
	for k := range have {
		gone = append(gone, k)
	}
	sort.Strings(gone)
	m.seq++
	for _, p := range append(gone, drop...) {
		if err := m.eng.DropTree(m.seq, p); err != nil {
			return err
		}
	}
	if len(patch) > 0 {
		if err := m.eng.Patch(m.seq, patch); err != nil {
			return err
		}
	}
	m.count(func(s *Stats) { s.Patched += len(patch); s.Dropped += len(gone) })
	m.unsure = false
	m.log.Info("cut-over compared the whole key space", "patched", len(patch), "dropped", len(gone))
	return nil
}
