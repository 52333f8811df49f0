package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"github.com/strata-kv/strata/engine"
)

// State is a member's decoded view of Dir at one tracker version. It is
// immutable once published.
type State struct {
	version uint64
	enabled bool
	users   map[string]*User // root user with the root role attached
	roles   map[string]*Role // stored roles; root is built in
}

// Enabled reports whether auth is on.
func (st *State) Enabled() bool { return st.enabled }

// Role returns a role by name, the built-in root role included.
func (st *State) Role(name string) (*Role, bool) {
	if name == RootName {
		return &rootRole, true
	}
	r, ok := st.roles[name]
	return r, ok
}

// Roles lists every role, root included, sorted by name.
func (st *State) Roles() []*Role {
	names := []string{RootName}
	for n := range st.roles {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*Role, 0, len(names))
	for _, n := range names {
		r, _ := st.Role(n)
		out = append(out, r)
	}
	return out
}

// Users lists every user sorted by name, each with the roles that still
// exist (etcd leaves out roles deleted since they were granted).
func (st *State) Users() []UserWithRoles {
	names := make([]string, 0, len(st.users))
	for n := range st.users {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]UserWithRoles, 0, len(names))
	for _, n := range names {
		u := st.users[n]
		uwr := UserWithRoles{User: u.User}
		for _, rn := range u.Roles {
			if role, ok := st.Role(rn); ok {
				uwr.Roles = append(uwr.Roles, role)
			}
		}
		out = append(out, uwr)
	}
	return out
}

// User returns one user with its roles expanded; unlike Users, a granted
// role that no longer exists is an error, as in etcd.
func (st *State) User(name string) (UserWithRoles, error) {
	u, ok := st.users[name]
	if !ok {
		return UserWithRoles{}, Errorf(http.StatusNotFound, "User %s does not exist.", name)
	}
	uwr := UserWithRoles{User: u.User}
	for _, rn := range u.Roles {
		role, ok := st.Role(rn)
		if !ok {
			return UserWithRoles{}, Errorf(http.StatusNotFound, "Role %s does not exist.", rn)
		}
		uwr.Roles = append(uwr.Roles, role)
	}
	return uwr, nil
}

// load decodes Dir as the store holds it now.
func load(ctx context.Context, kv KV, version uint64) (*State, error) {
	st := &State{version: version, users: map[string]*User{}, roles: map[string]*Role{}}
	ev, err := kv.Get(ctx, Dir, true, false, false)
	if err != nil {
		if engine.IsCode(err, engine.EcodeKeyNotFound) {
			return st, nil
		}
		return nil, fmt.Errorf("auth: read auth data: %w", err)
	}
	for _, n := range ev.Node.Nodes {
		switch n.Key {
		case EnabledPath:
			st.enabled = n.Value != nil && *n.Value == "true"
		case usersDir:
			for _, un := range n.Nodes {
				u := new(User)
				if un.Value == nil || json.Unmarshal([]byte(*un.Value), u) != nil {
					return nil, fmt.Errorf("auth: corrupt user record %q", un.Key)
				}
				attachRootRole(u)
				st.users[u.User] = u
			}
		case rolesDir:
			for _, rn := range n.Nodes {
				r := new(Role)
				if rn.Value == nil || json.Unmarshal([]byte(*rn.Value), r) != nil {
					return nil, fmt.Errorf("auth: corrupt role record %q", rn.Key)
				}
				st.roles[r.Role] = r
			}
		}
	}
	return st, nil
}
