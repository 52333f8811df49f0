package etcddata

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/strata-kv/strata/auth"
	"github.com/strata-kv/strata/engine"
)

// v2node is a node of etcd's v2store as its Save writes it.
type v2node struct {
	Path          string
	CreatedIndex  uint64
	ModifiedIndex uint64
	ExpireTime    time.Time
	Value         string
	Children      map[string]*v2node
}

type v2store struct {
	Root         *v2node
	CurrentIndex uint64
	WatcherHub   struct {
		EventHistory struct {
			Queue struct {
				Events   []*v2event
				Size     int
				Front    int
				Capacity int
			}
		}
	}
}

// v2event is an event of etcd's watcher hub history (v2store.Event).
type v2event struct {
	Action   string       `json:"action"`
	Node     *engine.Node `json:"node,omitempty"`
	PrevNode *engine.Node `json:"prevNode,omitempty"`
	Refresh  bool         `json:"refresh,omitempty"`
}

// history returns the hub's event ring oldest first, keys mapped.
func (s *v2store) history() []*engine.Event {
	q := &s.WatcherHub.EventHistory.Queue
	if q.Capacity <= 0 || len(q.Events) < q.Capacity {
		return nil
	}
	out := make([]*engine.Event, 0, q.Size)
	for i := 0; i < q.Size; i++ {
		ev := q.Events[(q.Front+i)%q.Capacity]
		if ev == nil || ev.Node == nil {
			return nil
		}
		mapNode(ev.Node)
		mapNode(ev.PrevNode)
		out = append(out, &engine.Event{Action: ev.Action, Node: ev.Node, PrevNode: ev.PrevNode, Refresh: ev.Refresh, EtcdIndex: ev.Node.ModifiedIndex})
	}
	return out
}

func mapNode(n *engine.Node) {
	if n == nil {
		return
	}
	if n.Key != "" {
		if p := mapPath(n.Key); p != "" {
			n.Key = p
		} else {
			n.Key = ""
		}
	}
	for _, c := range n.Nodes {
		mapNode(c)
	}
}

// Paths in etcd's v2 store: /1 holds the keys API's key space, /2 the v2
// auth store, /0 the membership. Strata keeps keys at the root and auth
// where package auth keeps it (one node per user and role, named by
// auth.UserPath and auth.RolePath, so the auth API can update and delete
// them); membership is not carried, but its writes are replayed (they move
// the index) under dropDir, removed at the end.
const dropDir = "/_etcdimport\x00"

// mapPath turns an etcd store path into the Strata path it lives at, and
// "" for /1 itself (Strata's root).
func mapPath(p string) string {
	switch {
	case p == "/1":
		return ""
	case strings.HasPrefix(p, "/1/"):
		return p[2:]
	case p == "/2":
		return auth.Dir
	case strings.HasPrefix(p, "/2/users/"):
		return auth.UserPath(p[len("/2/users/"):])
	case strings.HasPrefix(p, "/2/roles/"):
		return auth.RolePath(p[len("/2/roles/"):])
	case strings.HasPrefix(p, "/2/"):
		return auth.Dir + p[2:] // the users and roles dirs, enabled
	default:
		return dropDir + p
	}
}

// parseStore decodes the v2store JSON into seed nodes, parents first.
func parseStore(data []byte) ([]engine.SeedNode, []*engine.Event, uint64, error) {
	var s v2store
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, nil, 0, fmt.Errorf("v2 store json: %w", err)
	}
	if s.Root == nil {
		return nil, nil, 0, fmt.Errorf("v2 store json: no Root")
	}
	out := []engine.SeedNode{{Path: dropDir, Dir: true}}
	var walk func(n *v2node) error
	walk = func(n *v2node) error {
		if n.Path != "/" {
			if p := mapPath(n.Path); p != "" {
				sn := engine.SeedNode{Path: p, Dir: n.Children != nil, Created: n.CreatedIndex, Modified: n.ModifiedIndex, Value: n.Value}
				if !n.ExpireTime.IsZero() {
					sn.Expiry = n.ExpireTime.UnixNano()
				}
				out = append(out, sn)
			}
		}
		if n.Children == nil {
			return nil
		}
		names := make([]string, 0, len(n.Children))
		for k := range n.Children {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if err := walk(n.Children[k]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(s.Root); err != nil {
		return nil, nil, 0, err
	}
	return out, s.history(), s.CurrentIndex, nil
}
