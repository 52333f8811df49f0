package auth

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// RootName is both the root user and the built-in root role.
const (
	RootName  = "root"
	GuestName = "guest"
)

// User is etcd's v2auth.User, field for field, so stored values and
// answers are byte-compatible. Password holds a bcrypt hash when stored
// and is never sent back.
type User struct {
	User     string   `json:"user"`
	Password string   `json:"password,omitempty"`
	Roles    []string `json:"roles"`
	Grant    []string `json:"grant,omitempty"`
	Revoke   []string `json:"revoke,omitempty"`
}

// Role is etcd's v2auth.Role.
type Role struct {
	Role        string       `json:"role"`
	Permissions Permissions  `json:"permissions"`
	Grant       *Permissions `json:"grant,omitempty"`
	Revoke      *Permissions `json:"revoke,omitempty"`
}

// Permissions is etcd's v2auth.Permissions: key-space patterns only.
type Permissions struct {
	KV RWPermission `json:"kv"`
}

// RWPermission lists the key patterns a role may read and write.
type RWPermission struct {
	Read  []string `json:"read"`
	Write []string `json:"write"`
}

// IsEmpty reports whether p grants nothing (nil included).
func (p *Permissions) IsEmpty() bool {
	return p == nil || (len(p.KV.Read) == 0 && len(p.KV.Write) == 0)
}

// UserWithRoles is how etcd shows a user: its roles expanded.
type UserWithRoles struct {
	User  string  `json:"user"`
	Roles []*Role `json:"roles,omitempty"`
}

// rootRole is built in: it is never stored and cannot be changed.
var rootRole = Role{Role: RootName, Permissions: Permissions{KV: RWPermission{Read: []string{"/*"}, Write: []string{"/*"}}}}

// guestRole is created when auth is enabled without one: unauthenticated
// requests keep full access until an operator restricts it, as in etcd.
var guestRole = Role{Role: GuestName, Permissions: Permissions{KV: RWPermission{Read: []string{"/*"}, Write: []string{"/*"}}}}

// hasAccess is etcd's RWPermission.HasAccess (recursive false) and
// HasRecursiveAccess (recursive true): "/foo" grants exactly /foo, "/foo/*"
// grants every key that starts with "/foo/" (not /foobar, nor /foo
// itself), and a recursive request needs a pattern ending in '*' whose
// prefix the key starts with. An empty pattern grants nothing.
func (rw *RWPermission) hasAccess(key string, write, recursive bool) bool {
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

func (r *Role) hasAccess(key string, write, recursive bool) bool {
	return r.Role == RootName || r.Permissions.KV.hasAccess(key, write, recursive)
}

// attachRootRole gives the root user the root role, whatever is stored.
func attachRootRole(u *User) {
	if u.User != RootName {
		return
	}
	for _, r := range u.Roles {
		if r == RootName {
			return
		}
	}
	u.Roles = append(u.Roles, RootName)
}

func (u *User) isRoot() bool {
	for _, r := range u.Roles {
		if r == RootName {
			return true
		}
	}
	return false
}

// merge is etcd's User.merge: a new password is hashed, grants and
// revokes apply to the role set, and the roles come out sorted.
func (u User) merge(nu User) (User, error) {
	var out User
	if u.User != nu.User {
		return out, Errorf(http.StatusConflict, "Merging user data with conflicting usernames: %s %s", u.User, nu.User)
	}
	out.User = u.User
	if nu.Password != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(nu.Password), bcrypt.DefaultCost)
		if err != nil {
			return u, fmt.Errorf("auth: hash password: %w", err)
		}
		out.Password = string(hash)
	} else {
		out.Password = u.Password
	}
	roles := newSet(u.Roles)
	for _, g := range nu.Grant {
		if roles[g] {
			return User{}, Errorf(http.StatusConflict, "Granting duplicate role %s for user %s", g, nu.User)
		}
		roles[g] = true
	}
	for _, r := range nu.Revoke {
		if !roles[r] {
			return User{}, Errorf(http.StatusConflict, "Revoking ungranted role %s for user %s", r, nu.User)
		}
		delete(roles, r)
	}
	out.Roles = roles.sorted()
	return out, nil
}

// merge is etcd's Role.merge: grants (duplicates refused), then revokes
// (ungranted ones ignored), each list sorted.
func (r Role) merge(n Role) (Role, error) {
	var out Role
	if r.Role != n.Role {
		return out, Errorf(http.StatusConflict, "Merging role with conflicting names: %s %s", r.Role, n.Role)
	}
	out.Role = r.Role
	out.Permissions = r.Permissions
	if n.Grant != nil {
		read, err := grantList(r.Permissions.KV.Read, n.Grant.KV.Read, "read")
		if err != nil {
			return out, err
		}
		write, err := grantList(r.Permissions.KV.Write, n.Grant.KV.Write, "write")
		if err != nil {
			return out, err
		}
		out.Permissions = Permissions{KV: RWPermission{Read: read, Write: write}}
	}
	if n.Revoke != nil {
		kv := out.Permissions.KV
		out.Permissions = Permissions{KV: RWPermission{
			Read: revokeList(kv.Read, n.Revoke.KV.Read), Write: revokeList(kv.Write, n.Revoke.KV.Write),
		}}
	}
	return out, nil
}

func grantList(have, add []string, kind string) ([]string, error) {
	set := newSet(have)
	for _, p := range add {
		if set[p] {
			return nil, Errorf(http.StatusConflict, "Granting duplicate %s permission %s", kind, p)
		}
		set[p] = true
	}
	return set.sorted(), nil
}

func revokeList(have, remove []string) []string {
	set := newSet(have)
	for _, p := range remove {
		delete(set, p)
	}
	return set.sorted()
}

type stringSet map[string]bool

func newSet(l []string) stringSet {
	s := make(stringSet, len(l))
	for _, v := range l {
		s[v] = true
	}
	return s
}

// sorted is never nil, as etcd's set values are not.
func (s stringSet) sorted() []string {
	out := make([]string, 0, len(s))
	for v := range s {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
