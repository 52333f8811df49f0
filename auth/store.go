// Package auth is etcd 3.4's v2 auth model: users, roles, key-pattern
// permissions and the enabled flag, kept as ordinary engine nodes so they
// replicate through the log like any key. It knows nothing of HTTP but
// the status each of etcd's auth errors carries.
package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/strata-kv/strata/engine"
)

// Dir is where users, roles and the enabled flag live. The name starts
// with '_' (hidden from listings and recursive watches, live or from
// history) and contains a NUL byte, which the keys API refuses however
// it is spelled (raw or %00), so no keys request can read, write, delete
// or watch it.
const Dir = "/_auth\x00"

// EnabledPath holds "true" or "false".
const EnabledPath = Dir + "/enabled"

const (
	usersDir = Dir + "/users"
	rolesDir = Dir + "/roles"
)

// UserPath and RolePath name a record's node: the escaped name behind '='
// so that no name can start a hidden segment or add a level.
func UserPath(name string) string { return usersDir + "/=" + url.PathEscape(name) }

// RolePath is UserPath for roles.
func RolePath(name string) string { return rolesDir + "/=" + url.PathEscape(name) }

// KV is what auth needs of a member: replicated commands and reads.
// Failures are *engine.Error for API outcomes, anything else otherwise.
type KV interface {
	Propose(ctx context.Context, c engine.Command) (*engine.Event, error)
	Get(ctx context.Context, p string, recursive, sorted, quorum bool) (*engine.Event, error)
}

// trackingKV is implemented by stores that count the changes under a
// directory (engine.Engine.Track); without it, State rereads Dir on
// every call.
type trackingKV interface {
	Track(dir string) *engine.Tracker
}

// Store decides who may do what and applies the auth API's changes. It
// reads Dir only when the engine's tracker says it changed, and remembers
// verified credentials so that bcrypt runs once per (password hash,
// password), not per request. Safe for concurrent use.
type Store struct {
	kv      KV
	tracker interface{ Version() uint64 } // nil: reload on every call
	cur     atomic.Pointer[State]
	creds   credCache
	mu      sync.Mutex // serializes this member's auth mutations
}

// New returns the auth store over kv.
func New(kv KV) *Store {
	s := &Store{kv: kv}
	if tk, ok := kv.(trackingKV); ok {
		if t := tk.Track(Dir); t != nil {
			s.tracker = t
		}
	}
	s.creds.init()
	return s
}

// State returns the auth data as of at least every change applied on
// this member before the call. It fails only if the store cannot be read.
func (s *Store) State(ctx context.Context) (*State, error) {
	var v uint64
	if s.tracker != nil {
		v = s.tracker.Version()
		if st := s.cur.Load(); st != nil && st.version == v {
			return st, nil
		}
	}
	// The version is read before the data: the data is at least as new.
	st, err := load(ctx, s.kv, v)
	if err != nil {
		return nil, err
	}
	if s.tracker != nil {
		for {
			old := s.cur.Load()
			if old != nil && old.version >= v || s.cur.CompareAndSwap(old, st) {
				break
			}
		}
	}
	return st, nil
}

// errNotFound and errExists are the record outcomes callers map to
// etcd's messages.
var (
	errNotFound = engine.NewError(engine.EcodeKeyNotFound, "", 0)
	errExists   = engine.NewError(engine.EcodeNodeExist, "", 0)
)

// maxRetries bounds read-modify-write retries when another member
// changed the same record in between.
const maxRetries = 5

// readRecord reads a record linearizably (etcd's quorum get) and decodes
// it into v; it returns the node's modifiedIndex or errNotFound.
func (s *Store) readRecord(ctx context.Context, p string, v any) (uint64, error) {
	ev, err := s.kv.Get(ctx, p, false, false, true)
	if err != nil {
		if engine.IsCode(err, engine.EcodeKeyNotFound) {
			return 0, errNotFound
		}
		return 0, fmt.Errorf("auth: read %s: %w", strings.TrimPrefix(p, Dir), err)
	}
	if ev.Node.Value == nil || json.Unmarshal([]byte(*ev.Node.Value), v) != nil {
		return 0, fmt.Errorf("auth: corrupt record %s", strings.TrimPrefix(p, Dir))
	}
	return ev.Node.ModifiedIndex, nil
}

// writeRecord stores v at p: created if prevIndex is 0 (errExists if it
// is there), else swapped only if still at prevIndex (error 101).
func (s *Store) writeRecord(ctx context.Context, p string, v any, prevIndex uint64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("auth: encode %s: %w", strings.TrimPrefix(p, Dir), err)
	}
	c := engine.Command{Op: engine.OpCreate, Path: p, Value: string(b)}
	if prevIndex != 0 {
		c.Op, c.PrevIndex = engine.OpCAS, prevIndex
	}
	_, err = s.kv.Propose(ctx, c)
	switch {
	case err == nil:
		return nil
	case engine.IsCode(err, engine.EcodeNodeExist):
		return errExists
	}
	return err
}

func (s *Store) deleteRecord(ctx context.Context, p string) error {
	_, err := s.kv.Propose(ctx, engine.Command{Op: engine.OpDelete, Path: p})
	if engine.IsCode(err, engine.EcodeKeyNotFound) {
		return errNotFound
	}
	return err
}

// retry runs a read-modify-write until it does not lose a race.
func retry(f func() error) error {
	var err error
	for range maxRetries {
		if err = f(); !engine.IsCode(err, engine.EcodeTestFailed) {
			return err
		}
	}
	return fmt.Errorf("auth: record kept changing: %w", err)
}
