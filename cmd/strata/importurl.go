package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/strata-kv/strata/internal/etcdmirror"
)

// importProgressEvery is how often a live import reports while it follows.
var importProgressEvery = 2 * time.Second

// cutOverTimeout bounds the cut-over once the signal came (the final drain,
// at most one recursive GET, the write of the data dir's first snapshot
// excluded).
const cutOverTimeout = 5 * time.Minute

// fromURL mirrors a running etcd until ctx ends (SIGINT or SIGTERM), then
// cuts over and writes the target. Progress goes to progress.
func (w importTarget) fromURL(ctx context.Context, cfg etcdmirror.Config, progress io.Writer) error {
	start := time.Now()
	if err := targetInUse(w.dir); err != nil {
		return err
	}
	m, err := etcdmirror.Start(ctx, cfg)
	if err != nil {
		return err
	}
	st := m.Stats()
	fmt.Fprintf(progress, "strata import-etcd: read %d nodes at etcd index %d in %.2fs; following etcd's events. Stop the clients writing to etcd, then Ctrl-C (or SIGTERM) to cut over.\n",
		st.Nodes, st.StartIndex, time.Since(start).Seconds())
	done := make(chan struct{})
	go reportMirror(m, progress, done)
	err = m.Follow(ctx)
	close(done)
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "strata import-etcd: cutting over at etcd index %d\n", m.Stats().EtcdIndex)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cutOverTimeout)
	defer cancel()
	if err := m.CutOver(cctx); err != nil {
		return fmt.Errorf("cut-over (nothing written): %w", err)
	}
	followed := time.Since(start)
	res, err := w.write(m.Engine())
	if err != nil {
		return err
	}
	st = m.Stats()
	fmt.Fprintf(w.out, "strata import-etcd: %s: %d nodes read at index %d, %d events followed (%d on hidden keys), %d indexes no watch shows passed over, %d nodes corrected, %d dropped, %d restarts; v2 index %d\n",
		m.Endpoint(), st.Nodes, st.StartIndex, st.Events, st.Hidden, st.Skipped, st.Patched, st.Dropped, st.Restarts, st.Index)
	w.wrote(res, "followed and cut over", followed, start)
	return nil
}

// reportMirror prints one line every importProgressEvery until done.
func reportMirror(m *etcdmirror.Mirror, out io.Writer, done <-chan struct{}) {
	t := time.NewTicker(importProgressEvery)
	defer t.Stop()
	last, lastAt := m.Stats().Events, time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			st := m.Stats()
			rate := float64(st.Events-last) / now.Sub(lastAt).Seconds()
			last, lastAt = st.Events, now
			fmt.Fprintf(out, "strata import-etcd: following: index %d (etcd %d), %d events (%.0f/s), %d hidden, %d passed over, %d restarts\n",
				st.Index, max(st.EtcdIndex, st.Index), st.Events, rate, st.Hidden, st.Skipped, st.Restarts)
		}
	}
}
