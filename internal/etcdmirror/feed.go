package etcdmirror

import (
	"context"
	"sync"
)

// feed reads one live stream from etcd into memory as fast as etcd sends
// it, so that etcd never drops the watcher as slow (it does once 100
// events wait) while the mirror is busy with a GET or a catch-up.
type feed struct {
	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{} // a token whenever queue grows or the feed ends

	mu    sync.Mutex
	queue []*answer
	err   error // why the stream ended; set before done closes
}

func startFeed(next func() (*answer, error), closer func(), ctx context.Context, cancel context.CancelFunc) *feed {
	f := &feed{cancel: cancel, done: make(chan struct{}), ready: make(chan struct{}, 1)}
	go func() {
		defer close(f.done)
		defer closer()
		for {
			a, err := next()
			f.mu.Lock()
			if err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				f.err = err
			} else {
				f.queue = append(f.queue, a)
			}
			f.mu.Unlock()
			select {
			case f.ready <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return f
}

// take returns the queued answers, and the stream's end if it ended.
func (f *feed) take() ([]*answer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queue
	f.queue = nil
	if len(q) > 0 {
		return q, nil
	}
	return nil, f.err
}

// stop ends the stream and waits for the reader to finish.
func (f *feed) stop() {
	f.cancel()
	<-f.done
}
