package transport

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// fakeRaft records what the transport delivers; block stalls Step.
type fakeRaft struct {
	mu          sync.Mutex
	msgs        []raftpb.Message
	unreachable map[uint64]int
	snaps       map[uint64][]raft.SnapshotStatus
	block       chan struct{}
	got         chan struct{}
}

func newFake() *fakeRaft {
	return &fakeRaft{unreachable: map[uint64]int{}, snaps: map[uint64][]raft.SnapshotStatus{}, got: make(chan struct{}, 1<<16)}
}

func (f *fakeRaft) Step(ctx context.Context, m raftpb.Message) error {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	f.msgs = append(f.msgs, m)
	f.mu.Unlock()
	f.got <- struct{}{}
	return nil
}

func (f *fakeRaft) ReportUnreachable(id uint64) {
	f.mu.Lock()
	f.unreachable[id]++
	f.mu.Unlock()
}

func (f *fakeRaft) ReportSnapshot(id uint64, st raft.SnapshotStatus) {
	f.mu.Lock()
	f.snaps[id] = append(f.snaps[id], st)
	f.mu.Unlock()
	f.got <- struct{}{}
}

func (f *fakeRaft) wait(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-f.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d deliveries", i, n)
		}
	}
}

type member struct {
	tr   *Transport
	raft *fakeRaft
	srv  *httptest.Server
}

func newMember(t *testing.T, id, cluster uint64, src SnapshotSource) *member {
	tr := New(Config{ID: id, ClusterID: cluster, Snapshots: src, WriteTimeout: time.Second, QueueSize: 64})
	f := newFake()
	tr.SetRaft(f)
	srv := httptest.NewServer(tr.Handler())
	t.Cleanup(func() { tr.Stop(); srv.Close() })
	return &member{tr: tr, raft: f, srv: srv}
}

func TestStreamDeliversInOrder(t *testing.T) {
	a, b := newMember(t, 1, 7, nil), newMember(t, 2, 7, nil)
	a.tr.AddPeer(2, []string{b.srv.URL})
	const n = 5000
	for i := 1; i <= n; i++ {
		a.tr.Send([]raftpb.Message{{Type: raftpb.MsgApp, From: 1, To: 2, Index: uint64(i),
			Entries: []raftpb.Entry{{Index: uint64(i), Data: []byte(strings.Repeat("x", i%100))}}}})
		if i%50 == 0 {
			b.raft.wait(t, 50) // stay within the queue bound
		}
	}
	b.raft.mu.Lock()
	defer b.raft.mu.Unlock()
	if len(b.raft.msgs) != n {
		t.Fatalf("delivered %d messages, want %d", len(b.raft.msgs), n)
	}
	for i, m := range b.raft.msgs {
		if m.Index != uint64(i+1) || len(m.Entries[0].Data) != (i+1)%100 || m.From != 1 {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
}

func TestSnapshotStreamedAndReported(t *testing.T) {
	image := bytes.Repeat([]byte("snapshot image "), 100000)
	src := func(md raftpb.SnapshotMetadata) (*Snapshot, error) {
		md.Index += 5 // a newer image than asked for is fine
		return &Snapshot{Metadata: md, Image: io.NopCloser(bytes.NewReader(image)), Size: int64(len(image))}, nil
	}
	a, b := newMember(t, 1, 7, src), newMember(t, 2, 7, nil)
	a.tr.AddPeer(2, []string{b.srv.URL})
	a.tr.Send([]raftpb.Message{{Type: raftpb.MsgSnap, From: 1, To: 2, Snapshot: &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 10, Term: 2}}}})
	b.raft.wait(t, 1)
	a.raft.wait(t, 1)
	b.raft.mu.Lock()
	m := b.raft.msgs[0]
	b.raft.mu.Unlock()
	if m.Type != raftpb.MsgSnap || m.Snapshot.Metadata.Index != 15 || m.Snapshot.Metadata.Term != 2 || !bytes.Equal(m.Snapshot.Data, image) {
		t.Fatalf("received %s index %d term %d, %d image bytes", m.Type, m.Snapshot.Metadata.Index, m.Snapshot.Metadata.Term, len(m.Snapshot.Data))
	}
	a.raft.mu.Lock()
	defer a.raft.mu.Unlock()
	if got := a.raft.snaps[2]; len(got) != 1 || got[0] != raft.SnapshotFinish {
		t.Fatalf("snapshot reports %v, want [finish]", got)
	}
}

func TestSnapshotToDeadPeerReportedFailed(t *testing.T) {
	src := func(md raftpb.SnapshotMetadata) (*Snapshot, error) {
		return &Snapshot{Metadata: md, Image: io.NopCloser(strings.NewReader("img")), Size: 3}, nil
	}
	a := newMember(t, 1, 7, src)
	dead := httptest.NewServer(nil)
	dead.Close()
	a.tr.AddPeer(2, []string{dead.URL})
	a.tr.Send([]raftpb.Message{{Type: raftpb.MsgSnap, From: 1, To: 2, Snapshot: &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 10, Term: 2}}}})
	a.raft.wait(t, 1)
	a.raft.mu.Lock()
	defer a.raft.mu.Unlock()
	if got := a.raft.snaps[2]; len(got) != 1 || got[0] != raft.SnapshotFailure {
		t.Fatalf("snapshot reports %v, want [failure]", got)
	}
}

// TestSlowPeerDoesNotDelayOthers: a follower that stops reading fills its
// own queue (messages to it are dropped and reported) while another
// follower keeps receiving everything.
func TestSlowPeerDoesNotDelayOthers(t *testing.T) {
	a, slow, fast := newMember(t, 1, 7, nil), newMember(t, 2, 7, nil), newMember(t, 3, 7, nil)
	slow.raft.block = make(chan struct{})
	defer close(slow.raft.block)
	a.tr.AddPeer(2, []string{slow.srv.URL})
	a.tr.AddPeer(3, []string{fast.srv.URL})
	big := []raftpb.Entry{{Index: 1, Data: bytes.Repeat([]byte("y"), 64<<10)}}
	const n = 400 // 25 MiB to the slow peer: more than its socket buffers and queue
	for i := 0; i < n; i++ {
		a.tr.Send([]raftpb.Message{
			{Type: raftpb.MsgApp, From: 1, To: 2, Index: uint64(i), Entries: big},
			{Type: raftpb.MsgApp, From: 1, To: 3, Index: uint64(i), Entries: big},
		})
		fast.raft.wait(t, 1)
	}
	a.raft.mu.Lock()
	defer a.raft.mu.Unlock()
	if a.raft.unreachable[2] == 0 || a.raft.unreachable[3] != 0 {
		t.Fatalf("unreachable reports %v: want some for the slow peer 2, none for 3", a.raft.unreachable)
	}
	st := a.tr.Stats()
	if st[2].Fail == 0 || st[3].Fail != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOtherClusterRefused(t *testing.T) {
	a, b := newMember(t, 1, 7, nil), newMember(t, 2, 8, nil)
	a.tr.AddPeer(2, []string{b.srv.URL})
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.tr.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
		a.raft.mu.Lock()
		u := a.raft.unreachable[2]
		a.raft.mu.Unlock()
		if u > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("messages to a member of another cluster were not reported unreachable")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.raft.mu.Lock()
	defer b.raft.mu.Unlock()
	if len(b.raft.msgs) != 0 {
		t.Fatalf("a member of cluster 8 received %d messages from cluster 7", len(b.raft.msgs))
	}
}

// TestReconnectAfterPeerRestart: the stream comes back when the peer does.
func TestReconnectAfterPeerRestart(t *testing.T) {
	a := newMember(t, 1, 7, nil)
	b := newMember(t, 2, 7, nil)
	url := b.srv.URL
	a.tr.AddPeer(2, []string{url})
	a.tr.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
	b.raft.wait(t, 1)
	b.srv.CloseClientConnections()
	b.tr.Stop()
	b.srv.Close()
	// Restart on the same address.
	tr := New(Config{ID: 2, ClusterID: 7})
	f := newFake()
	tr.SetRaft(f)
	srv := httptest.NewUnstartedServer(tr.Handler())
	ln, err := net.Listen("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Skipf("cannot rebind %s: %v", url, err)
	}
	srv.Listener = ln
	srv.Start()
	defer func() { tr.Stop(); srv.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.tr.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
		select {
		case <-f.got:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no message delivered after the peer restarted")
		}
	}
}
