package server

import (
	"context"
	"sync"
	"time"

	"github.com/strata-kv/strata/consensus"
	"github.com/strata-kv/strata/consensus/transport"
	"go.etcd.io/raft/v3/raftpb"
)

// appendStats counts the raft appends (MsgApp) this member sends and
// receives, for /v2/stats/self's *AppendRequestCnt and, as etcd 3.4, the
// package and byte rates over the last (up to) 200 of them, reported only
// while the newest is under a second old.
type appendStats struct {
	send, recv rateQueue
}

const rateQueueCap = 200 // etcd's stats queueCapacity

type rateSample struct {
	at   time.Time
	size int
}

type rateQueue struct {
	mu    sync.Mutex
	count uint64
	ring  [rateQueueCap]rateSample
	n     int // samples held, at most rateQueueCap
	next  int // where the next sample goes
	bytes int // total size of the samples held
}

func (q *rateQueue) add(size int, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.count++
	if q.n == rateQueueCap {
		q.bytes -= q.ring[q.next].size
	} else {
		q.n++
	}
	q.ring[q.next] = rateSample{now, size}
	q.bytes += size
	q.next = (q.next + 1) % rateQueueCap
}

// rates returns the count and, as etcd's statsQueue.Rate, the packages
// and bytes per second between the oldest and newest sample held; zero
// rates when the newest is over a second old or the span is empty.
func (q *rateQueue) rates(now time.Time) (count uint64, pkg, bw float64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return q.count, 0, 0
	}
	back := q.ring[(q.next+rateQueueCap-1)%rateQueueCap].at
	front := q.ring[(q.next+rateQueueCap-q.n)%rateQueueCap].at
	span := back.Sub(front)
	if now.Sub(back) > time.Second || span <= 0 {
		return q.count, 0, 0
	}
	return q.count, float64(q.n) / span.Seconds(), float64(q.bytes) / span.Seconds()
}

// countSends wraps the transport raft sends through.
type countSends struct {
	st   *appendStats
	next consensus.Transport
}

func (c countSends) Send(msgs []raftpb.Message) {
	now := time.Now()
	for i := range msgs {
		if msgs[i].Type == raftpb.MsgApp {
			c.st.send.add(msgs[i].Size(), now)
		}
	}
	c.next.Send(msgs)
}

// countRecvs wraps the member the transport delivers received messages to.
type countRecvs struct {
	st *appendStats
	transport.Raft
}

func (c countRecvs) Step(ctx context.Context, m raftpb.Message) error {
	if m.Type == raftpb.MsgApp {
		c.st.recv.add(m.Size(), time.Now())
	}
	return c.Raft.Step(ctx, m)
}
