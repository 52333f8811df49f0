package etcddata

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/strata-kv/strata/backends/memory"
	"github.com/strata-kv/strata/engine"
)

// ErrNoV2Data means the data dir holds no v2 keys or auth data (a
// v3-only member): there is nothing for Strata to serve.
var ErrNoV2Data = errors.New("no v2 data (a v3-only data dir?)")

// Image is an etcd member's v2 store rebuilt in a Strata engine.
type Image struct {
	Engine        *engine.Engine
	RaftIndex     uint64 // last etcd raft index applied (the snapshot's, then the WAL's)
	SnapIndex     uint64 // raft index of the snapshot read (0: none)
	Snapshot      string // its file, if any
	WALFiles      int
	Nodes         int    // nodes seeded from the snapshot
	Replayed      int    // v2 writes replayed from the WAL
	V3Entries     int    // v3 requests skipped
	HistoryEvents int    // events of etcd's watch history seeded from the snapshot
	StoreIndex    uint64 // the v2 index (X-Etcd-Index) after the import
	unlock        func()
	v2            bool // a v2 key or auth node, seeded or written
}

// Close releases the data dir's WAL locks.
func (im *Image) Close() {
	if im.unlock != nil {
		im.unlock()
		im.unlock = nil
	}
}

// Load reads the etcd data dir dir (the one given to etcd --data-dir) and
// rebuilds its v2 store, replaying the committed WAL entries after the
// newest snapshot as etcd's v2 applier would, each through the engine at
// its own raft index. The WAL stays locked until Close.
func Load(dir string) (_ *Image, err error) {
	member := filepath.Join(dir, "member")
	walDir, snapDir := filepath.Join(member, "wal"), filepath.Join(member, "snap")
	if _, err := os.Stat(walDir); err != nil {
		return nil, fmt.Errorf("%s is not an etcd data dir (no member/wal): %w", dir, err)
	}
	walNames, err := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if err != nil {
		return nil, err
	}
	if len(walNames) == 0 {
		return nil, fmt.Errorf("%s: no WAL files in %s", dir, walDir)
	}
	held, err := lockFiles(walNames)
	if err != nil {
		return nil, err
	}
	im := &Image{unlock: func() {
		for _, f := range held {
			f.Close()
		}
	}}
	defer func() {
		if err != nil {
			im.Close()
		}
	}()
	snapshot, snapName, err := newestSnapshot(snapDir)
	if err != nil {
		return nil, err
	}
	log, err := readWAL(walDir)
	if err != nil {
		return nil, err
	}
	im.WALFiles = len(log.files)
	eng, err := engine.Open(memory.New(), engine.Options{})
	if err != nil {
		return nil, err
	}
	im.Engine = eng
	if snapshot != nil {
		if err := im.seed(snapshot, snapName); err != nil {
			return nil, err
		}
	}
	if err := im.replay(log); err != nil {
		return nil, err
	}
	if im.RaftIndex == 0 {
		return nil, fmt.Errorf("%s: %w: no snapshot and no committed entries", dir, ErrNoV2Data)
	}
	if err := eng.DropTree(im.RaftIndex, dropDir); err != nil {
		return nil, err
	}
	if !im.v2 {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoV2Data)
	}
	if err := eng.SaveHistory(im.RaftIndex); err != nil {
		return nil, err
	}
	im.StoreIndex = eng.Index()
	return im, nil
}

// seed loads the snapshot's v2 store (and its event history, when it ends
// at the store's index) into the image's engine.
func (im *Image) seed(snapshot *raftpb.Snapshot, snapName string) error {
	im.Snapshot, im.SnapIndex = snapName, snapshot.Metadata.Index
	nodes, hist, index, err := parseStore(snapshot.Data)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", snapName, err)
	}
	if err := im.Engine.Seed(max(im.SnapIndex, 1), index, nodes); err != nil {
		return fmt.Errorf("snapshot %s: %w", snapName, err)
	}
	im.Nodes = len(nodes) - 1
	for _, n := range nodes {
		if !strings.HasPrefix(n.Path, dropDir) {
			im.v2 = true
		}
	}
	if n := len(hist); n > 0 && hist[n-1].Index() == index {
		if err := im.Engine.SeedHistory(hist); err != nil {
			return fmt.Errorf("snapshot %s: event history: %w", snapName, err)
		}
		im.HistoryEvents = n
	}
	return nil
}

// replay applies the committed WAL entries after the snapshot, as etcd's
// v2 applier would, each at its own raft index.
func (im *Image) replay(log *walLog) error {
	im.RaftIndex = im.SnapIndex
	for _, e := range log.entries {
		if e.Index <= im.SnapIndex || e.Index > log.state.Commit {
			continue
		}
		cmds, v3, err := entryCommands(e)
		if err != nil {
			return fmt.Errorf("wal entry %d: %w", e.Index, err)
		}
		if v3 {
			im.V3Entries++
		}
		for _, c := range cmds {
			if c.Op != engine.OpExpire && !strings.HasPrefix(c.Path, dropDir) {
				im.v2 = true
			}
		}
		if len(cmds) > 0 {
			if _, err := im.Engine.ApplyBatch(e.Index, cmds); err != nil {
				return err
			}
			im.Replayed++
		}
		im.RaftIndex = e.Index
	}
	return nil
}

// entryCommands is what etcd's applier does to the v2 store for one
// committed entry, as Strata engine commands on mapped paths.
func entryCommands(e raftpb.Entry) ([]engine.Command, bool, error) {
	switch e.Type {
	case raftpb.EntryNormal:
		if len(e.Data) == 0 {
			return nil, false, nil // a new leader's empty entry
		}
		r, v3, err := decodeEntry(e.Data)
		if err != nil || v3 {
			return nil, v3, err
		}
		c, ok := requestCommand(r)
		if !ok {
			return nil, false, nil
		}
		return []engine.Command{c}, false, nil
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			return nil, false, fmt.Errorf("conf change: %w", err)
		}
		return confChangeCommands(cc), false, nil
	}
	return nil, false, nil
}

// requestCommand is etcd's applierV2store (server/etcdserver/apply_v2.go).
func requestCommand(r *Request) (engine.Command, bool) {
	c := engine.Command{Path: r.Path, Value: r.Val, Dir: r.Dir, PrevValue: r.PrevValue,
		PrevIndex: r.PrevIndex, Recursive: r.Recursive, Refresh: r.Refresh, Expiration: r.Expiration}
	if r.Method != "SYNC" {
		p := mapPath(path.Clean(r.Path))
		if p == "" {
			p = "/"
		}
		c.Path = p
	}
	conditional := r.PrevIndex > 0 || r.PrevValue != ""
	switch r.Method {
	case "POST":
		c.Op, c.Unique = engine.OpCreate, true
	case "PUT":
		c.Op = engine.PutOp(r.PrevExist, conditional)
	case "DELETE":
		c.Op = engine.DeleteOp(conditional)
	case "SYNC":
		return engine.Command{Op: engine.OpExpire, Path: "/", Time: r.Time}, true
	default: // QGET, GET, HEAD change nothing
		return c, false
	}
	return c, true
}

// confChangeCommands are the v2 store writes of etcd's membership apply
// (membership.RaftCluster AddMember/RemoveMember/UpdateRaftAttributes):
// they move the v2 index, so they are replayed under dropDir.
func confChangeCommands(cc raftpb.ConfChange) []engine.Command {
	id := strconv.FormatUint(cc.NodeID, 16)
	member := dropDir + "/0/members/" + id
	var attrs struct {
		PeerURLs  []string `json:"peerURLs"`
		IsLearner bool     `json:"isLearner,omitempty"`
	}
	_ = json.Unmarshal(cc.Context, &attrs)
	v, _ := json.Marshal(attrs)
	switch cc.Type {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		return []engine.Command{{Op: engine.OpCreate, Path: member + "/raftAttributes", Value: string(v)}}
	case raftpb.ConfChangeRemoveNode:
		return []engine.Command{
			{Op: engine.OpDelete, Path: member, Dir: true, Recursive: true},
			{Op: engine.OpCreate, Path: dropDir + "/0/removed_members/" + id, Value: "removed"},
		}
	case raftpb.ConfChangeUpdateNode:
		return []engine.Command{{Op: engine.OpUpdate, Path: member + "/raftAttributes", Value: string(v)}}
	}
	return nil
}
