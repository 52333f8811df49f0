package httpd

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"

	"github.com/strata-kv/strata/engine"
)

// authDir is where the v2 auth API keeps its users, roles and enabled
// flag: ordinary engine nodes, replicated through the log like any key,
// so every member agrees. The name starts with '_' (hidden from listings
// and recursive watches, live or from history) and contains a NUL byte,
// which validKey refuses in any /v2/keys request however it is spelled
// (raw or %00), so the keys API can never read, write, delete or watch it.
const authDir = "/_auth\x00"

const (
	authEnabledPath = authDir + "/enabled"
	authUsersDir    = authDir + "/users"
	authRolesDir    = authDir + "/roles"

	rootRoleName  = "root"
	guestRoleName = "guest"
)

// authUser is etcd's v2auth.User, field for field, so stored values and
// answers are byte-compatible. Password holds a bcrypt hash when stored
// and is never sent back.
type authUser struct {
	User     string   `json:"user"`
	Password string   `json:"password,omitempty"`
	Roles    []string `json:"roles"`
	Grant    []string `json:"grant,omitempty"`
	Revoke   []string `json:"revoke,omitempty"`
}

// authRole is etcd's v2auth.Role.
type authRole struct {
	Role        string           `json:"role"`
	Permissions authPermissions  `json:"permissions"`
	Grant       *authPermissions `json:"grant,omitempty"`
	Revoke      *authPermissions `json:"revoke,omitempty"`
}

type authPermissions struct {
	KV rwPermission `json:"kv"`
}

type rwPermission struct {
	Read  []string `json:"read"`
	Write []string `json:"write"`
}

func (p *authPermissions) isEmpty() bool {
	return p == nil || (len(p.KV.Read) == 0 && len(p.KV.Write) == 0)
}

// rootRole is built in: it is never stored and cannot be changed.
var rootRole = authRole{Role: rootRoleName, Permissions: authPermissions{KV: rwPermission{Read: []string{"/*"}, Write: []string{"/*"}}}}

// guestRole is created when auth is enabled without one: unauthenticated
// requests keep full access until an operator restricts it, as in etcd.
var guestRole = authRole{Role: guestRoleName, Permissions: authPermissions{KV: rwPermission{Read: []string{"/*"}, Write: []string{"/*"}}}}

// hasAccess is etcd's RWPermission.HasAccess (recursive false) and
// HasRecursiveAccess (recursive true): "/foo" grants exactly /foo, "/foo/*"
// grants every key that starts with "/foo/" (not /foobar, nor /foo
// itself), and a recursive request needs a pattern ending in '*' whose
// prefix the key starts with. An empty pattern grants nothing.
func (rw *rwPermission) hasAccess(key string, write, recursive bool) bool {
	list := rw.Read
	if write {
		list = rw.Write
	}
	for _, pat := range list {
		if pat == "" {
			continue
		}
		if prefix, star := strings.CutSuffix(pat, "*"); star {
			if strings.HasPrefix(key, prefix) {
				return true
			}
		} else if !recursive && key == pat {
			return true
		}
	}
	return false
}

func (r *authRole) hasAccess(key string, write, recursive bool) bool {
	return r.Role == rootRoleName || r.Permissions.KV.hasAccess(key, write, recursive)
}

// attachRootRole gives the root user the root role, whatever is stored.
func attachRootRole(u *authUser) {
	if u.User != rootRoleName {
		return
	}
	for _, r := range u.Roles {
		if r == rootRoleName {
			return
		}
	}
	u.Roles = append(u.Roles, rootRoleName)
}

// authState is a member's decoded view of authDir at one tracker version.
// It is immutable once published.
type authState struct {
	version uint64
	enabled bool
	users   map[string]*authUser // root user with the root role attached
	roles   map[string]*authRole // stored roles; root is built in
}

func (st *authState) role(name string) (*authRole, bool) {
	if name == rootRoleName {
		return &rootRole, true
	}
	r, ok := st.roles[name]
	return r, ok
}

func (st *authState) isRoot(u *authUser) bool {
	for _, r := range u.Roles {
		if r == rootRoleName {
			return true
		}
	}
	return false
}

// authenticator decides who may do what. It reads authDir only when the
// engine's tracker says it changed, and remembers verified credentials so
// that bcrypt runs once per (user, password hash, password), not per
// request.
type authenticator struct {
	store   Store
	tracker interface{ Version() uint64 } // nil: reload on every request
	cur     atomic.Pointer[authState]
	creds   credCache
	mu      sync.Mutex // serializes this member's auth mutations
}

// trackingStore is implemented by stores that can count the changes
// under a directory (engine.Engine.Track); without it, auth state is
// reread on every request.
type trackingStore interface {
	Track(dir string) *engine.Tracker
}

func newAuthenticator(store Store) *authenticator {
	a := &authenticator{store: store}
	if ts, ok := store.(trackingStore); ok {
		if t := ts.Track(authDir); t != nil {
			a.tracker = t
		}
	}
	a.creds.init()
	return a
}

// state returns the auth data as of at least every change applied on this
// member before the call. It fails only if the store cannot be read.
func (a *authenticator) state(ctx context.Context) (*authState, error) {
	var v uint64
	if a.tracker != nil {
		v = a.tracker.Version()
		if st := a.cur.Load(); st != nil && st.version == v {
			return st, nil
		}
	}
	// The version is read before the data: the data is at least as new.
	st, err := a.load(ctx, v)
	if err != nil {
		return nil, err
	}
	if a.tracker != nil {
		for {
			old := a.cur.Load()
			if old != nil && old.version >= v || a.cur.CompareAndSwap(old, st) {
				break
			}
		}
	}
	return st, nil
}

func (a *authenticator) load(ctx context.Context, version uint64) (*authState, error) {
	st := &authState{version: version, users: map[string]*authUser{}, roles: map[string]*authRole{}}
	ev, err := a.store.Get(ctx, authDir, true, false, false)
	if err != nil {
		if isCode(err, engine.EcodeKeyNotFound) {
			return st, nil
		}
		return nil, fmt.Errorf("auth: read auth data: %w", err)
	}
	for _, n := range ev.Node.Nodes {
		switch n.Key {
		case authEnabledPath:
			st.enabled = n.Value != nil && *n.Value == "true"
		case authUsersDir:
			for _, un := range n.Nodes {
				u := new(authUser)
				if un.Value == nil || json.Unmarshal([]byte(*un.Value), u) != nil {
					return nil, fmt.Errorf("auth: corrupt user record %q", un.Key)
				}
				attachRootRole(u)
				st.users[u.User] = u
			}
		case authRolesDir:
			for _, rn := range n.Nodes {
				r := new(authRole)
				if rn.Value == nil || json.Unmarshal([]byte(*rn.Value), r) != nil {
					return nil, fmt.Errorf("auth: corrupt role record %q", rn.Key)
				}
				st.roles[r.Role] = r
			}
		}
	}
	return st, nil
}

func isCode(err error, code int) bool {
	e, ok := err.(*engine.Error)
	return ok && e.ErrorCode == code
}

// authenticate checks an Authorization header against st: the user, or
// nil for a missing user, a malformed header or a wrong password.
func (a *authenticator) authenticate(st *authState, authz string) *authUser {
	name, password, ok := parseBasicAuth(authz)
	if !ok {
		return nil
	}
	u := st.users[name]
	if u == nil || u.Password == "" {
		return nil
	}
	if !a.creds.check(u.Password, password) {
		return nil
	}
	return u
}

// keyAccess is etcd's hasKeyPrefixAccess: with auth disabled anything
// goes; without an Authorization header the guest role decides; otherwise
// the header must name a user with the right password and one of the
// user's roles must grant access. key is the request path after /v2/keys,
// trailing slash included, as etcd checks it.
//
// Unlike etcd, the guest role is checked with the same recursive rule as
// users (etcd checks guests as if every request were non-recursive, so an
// exact-key grant would let a guest list everything below that key).
func (a *authenticator) keyAccess(ctx context.Context, authz, key string, write, recursive bool) (bool, error) {
	st, err := a.state(ctx)
	if err != nil {
		return false, err
	}
	if !st.enabled {
		return true, nil
	}
	var roles []string
	if authz == "" {
		roles = []string{guestRoleName}
	} else {
		u := a.authenticate(st, authz)
		if u == nil {
			return false, nil
		}
		roles = u.Roles
	}
	for _, name := range roles {
		if r, ok := st.role(name); ok && r.hasAccess(key, write, recursive) {
			return true, nil
		}
	}
	return false, nil
}

// rootAccess is etcd's hasRootAccess: auth disabled, or the header names
// a user with the right password and the root role.
func (a *authenticator) rootAccess(ctx context.Context, authz string) (bool, error) {
	st, err := a.state(ctx)
	if err != nil {
		return false, err
	}
	if !st.enabled {
		return true, nil
	}
	u := a.authenticate(st, authz)
	return u != nil && st.isRoot(u), nil
}

// parseBasicAuth is net/http's Request.BasicAuth on a header value.
func parseBasicAuth(auth string) (username, password string, ok bool) {
	const prefix = "Basic "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return "", "", false
	}
	c, err := base64.StdEncoding.DecodeString(auth[len(prefix):])
	if err != nil {
		return "", "", false
	}
	username, password, ok = strings.Cut(string(c), ":")
	if !ok {
		return "", "", false
	}
	return username, password, true
}

// maxCachedCreds bounds the credential cache; beyond it an arbitrary
// entry is dropped (it costs one more bcrypt later, nothing else).
const maxCachedCreds = 4096

// credCache remembers which (bcrypt hash, password) pairs bcrypt accepted.
// An entry is a fact about that exact hash, so it can never go stale: a
// changed password has a new hash (new salt) and misses, a deleted user
// is not found before the cache is asked, and roles are never cached.
// Failures are not cached at all. Entries are HMAC-SHA256 digests under
// a per-process random key, so no password is kept in memory.
type credCache struct {
	key [32]byte
	mu  sync.RWMutex
	ok  map[[32]byte]struct{}
}

func (c *credCache) init() {
	if _, err := rand.Read(c.key[:]); err != nil {
		panic(fmt.Sprintf("auth: no randomness for the credential cache: %v", err))
	}
	c.ok = make(map[[32]byte]struct{})
}

func (c *credCache) digest(hash, password string) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(hash))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var d [32]byte
	m.Sum(d[:0])
	return d
}

// check reports whether password matches the bcrypt hash, running bcrypt
// only for a pair not verified before.
func (c *credCache) check(hash, password string) bool {
	d := c.digest(hash, password)
	c.mu.RLock()
	_, ok := c.ok[d]
	c.mu.RUnlock()
	if ok {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return false
	}
	c.mu.Lock()
	if len(c.ok) >= maxCachedCreds {
		for k := range c.ok {
			delete(c.ok, k)
			break
		}
	}
	c.ok[d] = struct{}{}
	c.mu.Unlock()
	return true
}

// allowKeys answers a keys request the caller may not make with etcd's
// 401 (error 110) and reports false; rawKey is the decoded request path
// after /v2/keys. A failure to read the auth data answers error 300.
func (s *Server) allowKeys(ctx context.Context, w http.ResponseWriter, authz, rawKey string, kr *keyRequest) bool {
	write := kr.method != http.MethodGet && kr.method != http.MethodHead
	ok, err := s.auth.keyAccess(ctx, authz, rawKey, write, kr.recursive)
	if err != nil {
		writeError(w, err)
		return false
	}
	if !ok {
		writeErrorStatus(w, engine.NewError(engine.EcodeUnauthorized, "Insufficient credentials", 0), http.StatusUnauthorized)
		return false
	}
	return true
}
