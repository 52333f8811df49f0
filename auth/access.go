package auth

import (
	"context"
	"encoding/base64"
	"strings"
)

// authenticate checks an Authorization header value against st: the
// user, or nil for a missing user, a malformed header or a wrong password.
func (s *Store) authenticate(st *State, authz string) *User {
	name, password, ok := parseBasicAuth(authz)
	if !ok {
		return nil
	}
	u := st.users[name]
	if u == nil || u.Password == "" {
		return nil
	}
	if !s.creds.check(u.Password, password) {
		return nil
	}
	return u
}

// KeyAccess is etcd's hasKeyPrefixAccess: with auth disabled anything
// goes; without an Authorization header (authz "") the guest role
// decides; otherwise the header must name a user with the right password
// and one of the user's roles must grant access. key is the request path
// after /v2/keys, trailing slash included, as etcd checks it.
//
// Unlike etcd, the guest role is checked with the same recursive rule as
// users (etcd checks guests as if every request were non-recursive, so an
// exact-key grant would let a guest list everything below that key).
func (s *Store) KeyAccess(ctx context.Context, authz, key string, write, recursive bool) (bool, error) {
	st, err := s.State(ctx)
	if err != nil {
		return false, err
	}
	if !st.enabled {
		return true, nil
	}
	var roles []string
	if authz == "" {
		roles = []string{GuestName}
	} else {
		u := s.authenticate(st, authz)
		if u == nil {
			return false, nil
		}
		roles = u.Roles
	}
	for _, name := range roles {
		if r, ok := st.Role(name); ok && r.hasAccess(key, write, recursive) {
			return true, nil
		}
	}
	return false, nil
}

// RootAccess is etcd's hasRootAccess: auth disabled, or the header names
// a user with the right password and the root role.
func (s *Store) RootAccess(ctx context.Context, authz string) (bool, error) {
	st, err := s.State(ctx)
	if err != nil {
		return false, err
	}
	if !st.enabled {
		return true, nil
	}
	u := s.authenticate(st, authz)
	return u != nil && u.isRoot(), nil
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
