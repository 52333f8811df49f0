package auth

import (
	"context"
	"fmt"
	"net/http"
	"reflect"

	"golang.org/x/crypto/bcrypt"

	"github.com/strata-kv/strata/engine"
)

// The auth API's changes, as etcd's v2auth.Store makes them. Each is
// serialized on this member by s.mu and guarded across members by
// create-only writes and index-checked swaps.

func (s *Store) getUserRecord(ctx context.Context, name string) (User, uint64, error) {
	var u User
	idx, err := s.readRecord(ctx, UserPath(name), &u)
	if err == errNotFound {
		return u, 0, Errorf(http.StatusNotFound, "User %s does not exist.", name)
	}
	attachRootRole(&u)
	return u, idx, err
}

func (s *Store) getRoleRecord(ctx context.Context, name string) (Role, uint64, error) {
	if name == RootName {
		return rootRole, 0, nil
	}
	var r Role
	idx, err := s.readRecord(ctx, RolePath(name), &r)
	if err == errNotFound {
		return r, 0, Errorf(http.StatusNotFound, "Role %s does not exist.", name)
	}
	return r, idx, err
}

// CreateUser stores a new user with its password hashed.
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createUserLocked(ctx, u)
}

func (s *Store) createUserLocked(ctx context.Context, u User) (User, error) {
	attachRootRole(&u)
	if u.Password == "" {
		return u, Errorf(http.StatusBadRequest, "Cannot create user %s with an empty password", u.User)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.DefaultCost)
	if err != nil {
		return u, fmt.Errorf("auth: hash password: %w", err)
	}
	u.Password = string(hash)
	if err := s.writeRecord(ctx, UserPath(u.User), u, 0); err != nil {
		if err == errExists {
			return u, Errorf(http.StatusConflict, "User %s already exists.", u.User)
		}
		return u, err
	}
	return u, nil
}

// CreateOrUpdateUser updates u if it exists and creates it otherwise;
// created reports which.
func (s *Store) CreateOrUpdateUser(ctx context.Context, u User) (out User, created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, err := s.getUserRecord(ctx, u.User); err == nil {
		out, err := s.updateUserLocked(ctx, u)
		return out, false, err
	}
	out, err = s.createUserLocked(ctx, u)
	return out, true, err
}

// UpdateUser applies u's password, grants and revokes to the stored user.
func (s *Store) UpdateUser(ctx context.Context, u User) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updateUserLocked(ctx, u)
}

func (s *Store) updateUserLocked(ctx context.Context, u User) (User, error) {
	var out User
	err := retry(func() error {
		old, idx, err := s.getUserRecord(ctx, u.User)
		if err != nil {
			if ae, ok := err.(*Error); ok && ae.Status == http.StatusNotFound {
				out = u
			} else {
				out = old
			}
			return err
		}
		nu, err := old.merge(u)
		if err != nil {
			out = old
			return err
		}
		if reflect.DeepEqual(old, nu) {
			out = old
			return Errorf(http.StatusBadRequest, "User not updated. Use grant/revoke/password to update the user.")
		}
		out = nu
		return s.writeRecord(ctx, UserPath(u.User), nu, idx)
	})
	return out, err
}

// DeleteUser removes a user; root cannot go while auth is enabled.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.State(ctx)
	if err != nil {
		return err
	}
	if st.enabled && name == RootName {
		return Errorf(http.StatusForbidden, "Cannot delete root user while auth is enabled.")
	}
	if err := s.deleteRecord(ctx, UserPath(name)); err != nil {
		if err == errNotFound {
			return Errorf(http.StatusNotFound, "User %s does not exist", name)
		}
		return err
	}
	return nil
}

// CreateRole stores a new role; the root role is built in.
func (s *Store) CreateRole(ctx context.Context, r Role) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createRoleLocked(ctx, r)
}

func (s *Store) createRoleLocked(ctx context.Context, r Role) error {
	if r.Role == RootName {
		return Errorf(http.StatusForbidden, "Cannot modify role %s: is root role.", r.Role)
	}
	if err := s.writeRecord(ctx, RolePath(r.Role), r, 0); err != nil {
		if err == errExists {
			return Errorf(http.StatusConflict, "Role %s already exists.", r.Role)
		}
		return err
	}
	return nil
}

// DeleteRole removes a role; users keep the name in their lists.
func (s *Store) DeleteRole(ctx context.Context, name string) error {
	if name == RootName {
		return Errorf(http.StatusForbidden, "Cannot modify role %s: is root role.", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.deleteRecord(ctx, RolePath(name)); err != nil {
		if err == errNotFound {
			return Errorf(http.StatusNotFound, "Role %s doesn't exist.", name)
		}
		return err
	}
	return nil
}

// UpdateRole applies r's grants and revokes to the stored role.
func (s *Store) UpdateRole(ctx context.Context, r Role) (Role, error) {
	if r.Role == RootName {
		return Role{}, Errorf(http.StatusForbidden, "Cannot modify role %s: is root role.", r.Role)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out Role
	err := retry(func() error {
		old, idx, err := s.getRoleRecord(ctx, r.Role)
		if err != nil {
			out = r
			return err
		}
		nr, err := old.merge(r)
		if err != nil {
			out = old
			return err
		}
		if reflect.DeepEqual(old, nr) {
			out = old
			return Errorf(http.StatusBadRequest, "Role not updated. Use grant/revoke to update the role.")
		}
		out = nr
		return s.writeRecord(ctx, RolePath(r.Role), nr, idx)
	})
	return out, err
}

// Enable is etcd's EnableAuth: it needs a root user and creates the
// guest role (full access) if there is none.
func (s *Store) Enable(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.State(ctx)
	if err != nil {
		return err
	}
	if st.enabled {
		return Errorf(http.StatusConflict, "already enabled")
	}
	if _, _, err := s.getUserRecord(ctx, RootName); err != nil {
		return Errorf(http.StatusConflict, "No root user available, please create one")
	}
	if _, _, err := s.getRoleRecord(ctx, GuestName); err != nil {
		if err := s.createRoleLocked(ctx, guestRole); err != nil {
			return err
		}
	}
	return s.setEnabled(ctx, true)
}

// Disable is etcd's DisableAuth.
func (s *Store) Disable(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.State(ctx)
	if err != nil {
		return err
	}
	if !st.enabled {
		return Errorf(http.StatusConflict, "already disabled")
	}
	return s.setEnabled(ctx, false)
}

func (s *Store) setEnabled(ctx context.Context, on bool) error {
	v := "false"
	if on {
		v = "true"
	}
	if _, err := s.kv.Propose(ctx, engine.Command{Op: engine.OpSet, Path: EnabledPath, Value: v}); err != nil {
		return fmt.Errorf("auth: set enabled=%s: %w", v, err)
	}
	return nil
}
