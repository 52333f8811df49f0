package consensus

import (
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func TestSplitEarly(t *testing.T) {
	all := []raftpb.Message{
		{Type: raftpb.MsgApp, To: 2, Index: 1},
		{Type: raftpb.MsgAppResp, To: 2, Index: 2},
		{Type: raftpb.MsgProp, To: 2, Index: 3},
		{Type: raftpb.MsgHeartbeat, To: 3, Index: 4},
		{Type: raftpb.MsgVoteResp, To: 3, Index: 5},
		{Type: raftpb.MsgSnap, To: 3, Index: 6},
		{Type: raftpb.MsgApp, To: 3, Index: 7},
		{Type: raftpb.MsgReadIndexResp, To: 2, Index: 8},
	}
	indexes := func(ms []raftpb.Message) []uint64 {
		var out []uint64
		for _, m := range ms {
			out = append(out, m.Index)
		}
		return out
	}
	for _, tc := range []struct {
		leader      bool
		early, late []uint64
	}{
		{leader: true, early: []uint64{1, 3, 4, 7}, late: []uint64{2, 5, 6, 8}},
		{leader: false, early: []uint64{3}, late: []uint64{1, 2, 4, 5, 6, 7, 8}},
	} {
		msgs := slices.Clone(all)
		early, late := splitEarly(msgs, make([]raftpb.Message, 0, 1), tc.leader)
		if got := indexes(early); !slices.Equal(got, tc.early) {
			t.Errorf("leader=%v: early %v, want %v", tc.leader, got, tc.early)
		}
		if got := indexes(late); !slices.Equal(got, tc.late) {
			t.Errorf("leader=%v: late %v, want %v", tc.leader, got, tc.late)
		}
	}
	if early, late := splitEarly(nil, nil, true); len(early) != 0 || len(late) != 0 {
		t.Errorf("nil: %v %v", early, late)
	}
}
