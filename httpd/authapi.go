package httpd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"reflect"
	"sort"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/strata-kv/strata/engine"
)

// The /v2/auth endpoints, answered as etcd 3.4's v2http does: same routes,
// order of checks, status codes, messages and JSON. Every change is an
// ordinary command on a node under authDir, proposed through the log.

const authPrefix = "/v2/auth"

// authError is etcd's v2auth.Error: a status and a message, answered as
// {"message":...} without a trailing newline.
type authError struct {
	status int
	msg    string
}

func (e *authError) Error() string { return e.msg }

func authErr(status int, format string, a ...any) *authError {
	return &authError{status: status, msg: "auth: " + fmt.Sprintf(format, a...)}
}

// writeHTTPError is etcd's httptypes.HTTPError.WriteTo.
func writeHTTPError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// writeAuthAPIError is etcd's v2http writeError for the auth handlers.
func writeAuthAPIError(w http.ResponseWriter, err error) {
	switch e := err.(type) {
	case *authError:
		writeHTTPError(w, e.status, e.msg)
	case *engine.Error:
		writeError(w, e)
	default:
		writeHTTPError(w, http.StatusInternalServerError, "Internal Server Error")
	}
}

// writeNoAuth is etcd's answer to an auth request without root access.
func writeNoAuth(w http.ResponseWriter) {
	writeHTTPError(w, http.StatusUnauthorized, "Insufficient credentials")
}

// allowMethod is etcd's: 405 with an Allow header for other methods.
func allowMethod(w http.ResponseWriter, m string, ms ...string) bool {
	for _, meth := range ms {
		if m == meth {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(ms, ","))
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}

// checkRoot answers 401 (or 500) and reports false unless the request may
// administer auth. For GET-only checks (enable status) write is false.
func (s *Server) checkRoot(w http.ResponseWriter, r *http.Request, write bool) bool {
	if !write && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return true
	}
	ok, err := s.auth.rootAccess(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		writeAuthAPIError(w, err)
		return false
	}
	if !ok {
		writeNoAuth(w)
		return false
	}
	return true
}

func (s *Server) authHeaders(w http.ResponseWriter) {
	h := w.Header()
	if s.clusterIDHeader != nil {
		h["X-Etcd-Cluster-Id"] = s.clusterIDHeader
	}
	h.Set("Content-Type", "application/json")
}

// writeAuthJSON is json.NewEncoder(w).Encode(v), as etcd answers.
func writeAuthJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	w.Write(append(b, '\n'))
}

func (s *Server) handleAuthEnable(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r.Method, "GET", "PUT", "DELETE") {
		return
	}
	if !s.checkRoot(w, r, false) {
		return
	}
	s.authHeaders(w)
	st, err := s.auth.state(r.Context())
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	switch r.Method {
	case "GET":
		writeAuthJSON(w, struct {
			Enabled bool `json:"enabled"`
		}{st.enabled})
	case "PUT":
		if err := s.enableAuth(r.Context()); err != nil {
			writeAuthAPIError(w, err)
		}
	case "DELETE":
		if err := s.disableAuth(r.Context()); err != nil {
			writeAuthAPIError(w, err)
		}
	}
}

// authSubpath splits /v2/auth/{users,roles}[/name] as etcd does: it
// reports the name ("" for the collection) or false for a deeper path.
func authSubpath(urlPath string) (string, bool) {
	pieces := strings.Split(path.Clean(urlPath[len(authPrefix):]), "/")
	switch len(pieces) {
	case 2:
		return "", true
	case 3:
		return pieces[2], true
	}
	return "", false
}

func (s *Server) handleAuthUsers(w http.ResponseWriter, r *http.Request) {
	name, ok := authSubpath(r.URL.Path)
	if !ok {
		writeHTTPError(w, http.StatusBadRequest, "Invalid path")
		return
	}
	if name == "" {
		if !allowMethod(w, r.Method, "GET") || !s.checkRoot(w, r, true) {
			return
		}
		s.authHeaders(w)
		s.listUsers(w, r)
		return
	}
	if !allowMethod(w, r.Method, "GET", "PUT", "DELETE") || !s.checkRoot(w, r, true) {
		return
	}
	s.authHeaders(w)
	switch r.Method {
	case "GET":
		s.getUser(w, r, name)
	case "PUT":
		s.putUser(w, r, name)
	case "DELETE":
		if err := s.deleteUser(r.Context(), name); err != nil {
			writeAuthAPIError(w, err)
		}
	}
}

func (s *Server) handleAuthRoles(w http.ResponseWriter, r *http.Request) {
	name, ok := authSubpath(r.URL.Path)
	if !ok {
		writeHTTPError(w, http.StatusBadRequest, "Invalid path")
		return
	}
	if name == "" {
		if !allowMethod(w, r.Method, "GET") || !s.checkRoot(w, r, true) {
			return
		}
		s.authHeaders(w)
		s.listRoles(w, r)
		return
	}
	if !allowMethod(w, r.Method, "GET", "PUT", "DELETE") || !s.checkRoot(w, r, true) {
		return
	}
	s.authHeaders(w)
	switch r.Method {
	case "GET":
		st, err := s.auth.state(r.Context())
		if err != nil {
			writeAuthAPIError(w, err)
			return
		}
		role, ok := st.role(name)
		if !ok {
			writeAuthAPIError(w, authErr(http.StatusNotFound, "Role %s does not exist.", name))
			return
		}
		writeAuthJSON(w, role)
	case "PUT":
		s.putRole(w, r, name)
	case "DELETE":
		if err := s.deleteRole(r.Context(), name); err != nil {
			writeAuthAPIError(w, err)
		}
	}
}

// userWithRoles is how etcd shows a user: its roles expanded.
type userWithRoles struct {
	User  string      `json:"user"`
	Roles []*authRole `json:"roles,omitempty"`
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	st, err := s.auth.state(r.Context())
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	names := make([]string, 0, len(st.users))
	for n := range st.users {
		names = append(names, n)
	}
	sort.Strings(names)
	var out struct {
		Users []userWithRoles `json:"users"`
	}
	for _, n := range names {
		u := st.users[n]
		uwr := userWithRoles{User: u.User}
		for _, rn := range u.Roles {
			if role, ok := st.role(rn); ok { // roles deleted since are left out
				uwr.Roles = append(uwr.Roles, role)
			}
		}
		out.Users = append(out.Users, uwr)
	}
	writeAuthJSON(w, out)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, name string) {
	st, err := s.auth.state(r.Context())
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	u, ok := st.users[name]
	if !ok {
		writeAuthAPIError(w, authErr(http.StatusNotFound, "User %s does not exist.", name))
		return
	}
	uwr := userWithRoles{User: u.User}
	for _, rn := range u.Roles {
		role, ok := st.role(rn)
		if !ok {
			writeAuthAPIError(w, authErr(http.StatusNotFound, "Role %s does not exist.", rn))
			return
		}
		uwr.Roles = append(uwr.Roles, role)
	}
	writeAuthJSON(w, uwr)
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request) {
	st, err := s.auth.state(r.Context())
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	names := []string{rootRoleName}
	for n := range st.roles {
		names = append(names, n)
	}
	sort.Strings(names)
	var out struct {
		Roles []*authRole `json:"roles"`
	}
	for _, n := range names {
		role, _ := st.role(n)
		out.Roles = append(out.Roles, role)
	}
	writeAuthJSON(w, out)
}

// readAuthBody decodes the first JSON value of a bounded request body.
func (s *Server) readAuthBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
	if err := json.NewDecoder(body).Decode(v); err != nil {
		writeHTTPError(w, http.StatusBadRequest, "Invalid JSON in request body.")
		return false
	}
	return true
}

func (s *Server) putUser(w http.ResponseWriter, r *http.Request, name string) {
	var u authUser
	if !s.readAuthBody(w, r, &u) {
		return
	}
	if u.User != name {
		writeHTTPError(w, http.StatusBadRequest, "User JSON name does not match the name in the URL")
		return
	}
	var (
		out     authUser
		created bool
		err     error
	)
	ctx := r.Context()
	if len(u.Grant) == 0 && len(u.Revoke) == 0 {
		if len(u.Roles) != 0 {
			out, err = s.createUser(ctx, u)
		} else {
			out, created, err = s.createOrUpdateUser(ctx, u)
		}
	} else {
		if len(u.Roles) != 0 {
			writeHTTPError(w, http.StatusBadRequest, "User JSON contains both roles and grant/revoke")
			return
		}
		out, err = s.updateUser(ctx, u)
	}
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	if created {
		w.WriteHeader(http.StatusCreated)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	out.Password = ""
	writeAuthJSON(w, out)
}

func (s *Server) putRole(w http.ResponseWriter, r *http.Request, name string) {
	var in authRole
	if !s.readAuthBody(w, r, &in) {
		return
	}
	if in.Role != name {
		writeHTTPError(w, http.StatusBadRequest, "Role JSON name does not match the name in the URL")
		return
	}
	ctx := r.Context()
	if in.Grant.isEmpty() && in.Revoke.isEmpty() {
		if err := s.createRole(ctx, in); err != nil {
			writeAuthAPIError(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
		writeAuthJSON(w, in)
		return
	}
	if !in.Permissions.isEmpty() {
		writeHTTPError(w, http.StatusBadRequest, "Role JSON contains both permissions and grant/revoke")
		return
	}
	out, err := s.updateRole(ctx, in)
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
	writeAuthJSON(w, out)
}

// Storage: one node per user and per role, named by the escaped name
// behind '=' so no name can start a hidden segment or add a level.

func userPath(name string) string { return authUsersDir + "/=" + url.PathEscape(name) }
func rolePath(name string) string { return authRolesDir + "/=" + url.PathEscape(name) }

// errNotFound and errExists are the store outcomes the callers map to
// etcd's messages.
var (
	errNotFound = engine.NewError(engine.EcodeKeyNotFound, "", 0)
	errExists   = engine.NewError(engine.EcodeNodeExist, "", 0)
)

// maxAuthRetries bounds read-modify-write retries when another member
// changed the same record in between.
const maxAuthRetries = 5

// readRecord reads a record linearizably (etcd's quorum get) and decodes
// it into v; it returns the node's modifiedIndex or errNotFound.
func (s *Server) readRecord(ctx context.Context, p string, v any) (uint64, error) {
	ev, err := s.store.Get(ctx, p, false, false, true)
	if err != nil {
		if isCode(err, engine.EcodeKeyNotFound) {
			return 0, errNotFound
		}
		return 0, fmt.Errorf("auth: read %s: %w", strings.TrimPrefix(p, authDir), err)
	}
	if ev.Node.Value == nil || json.Unmarshal([]byte(*ev.Node.Value), v) != nil {
		return 0, fmt.Errorf("auth: corrupt record %s", strings.TrimPrefix(p, authDir))
	}
	return ev.Node.ModifiedIndex, nil
}

// writeRecord stores v at p: created if prevIndex is 0 (errExists if it
// is there), else swapped only if still at prevIndex (errTestFailed).
func (s *Server) writeRecord(ctx context.Context, p string, v any, prevIndex uint64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("auth: encode %s: %w", strings.TrimPrefix(p, authDir), err)
	}
	c := engine.Command{Op: engine.OpCreate, Path: p, Value: string(b)}
	if prevIndex != 0 {
		c.Op, c.PrevIndex = engine.OpCAS, prevIndex
	}
	_, err = s.store.Propose(ctx, c)
	switch {
	case err == nil:
		return nil
	case isCode(err, engine.EcodeNodeExist):
		return errExists
	}
	return err
}

func (s *Server) deleteRecord(ctx context.Context, p string) error {
	_, err := s.store.Propose(ctx, engine.Command{Op: engine.OpDelete, Path: p})
	if isCode(err, engine.EcodeKeyNotFound) {
		return errNotFound
	}
	return err
}

// retry runs a read-modify-write until it does not lose a race.
func retry(f func() error) error {
	var err error
	for range maxAuthRetries {
		if err = f(); !isCode(err, engine.EcodeTestFailed) {
			return err
		}
	}
	return fmt.Errorf("auth: record kept changing: %w", err)
}

func (s *Server) getUserRecord(ctx context.Context, name string) (authUser, uint64, error) {
	var u authUser
	idx, err := s.readRecord(ctx, userPath(name), &u)
	if err == errNotFound {
		return u, 0, authErr(http.StatusNotFound, "User %s does not exist.", name)
	}
	attachRootRole(&u)
	return u, idx, err
}

func (s *Server) getRoleRecord(ctx context.Context, name string) (authRole, uint64, error) {
	if name == rootRoleName {
		return rootRole, 0, nil
	}
	var r authRole
	idx, err := s.readRecord(ctx, rolePath(name), &r)
	if err == errNotFound {
		return r, 0, authErr(http.StatusNotFound, "Role %s does not exist.", name)
	}
	return r, idx, err
}

func (s *Server) createUser(ctx context.Context, u authUser) (authUser, error) {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	return s.createUserLocked(ctx, u)
}

func (s *Server) createUserLocked(ctx context.Context, u authUser) (authUser, error) {
	attachRootRole(&u)
	if u.Password == "" {
		return u, authErr(http.StatusBadRequest, "Cannot create user %s with an empty password", u.User)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.DefaultCost)
	if err != nil {
		return u, fmt.Errorf("auth: hash password: %w", err)
	}
	u.Password = string(hash)
	if err := s.writeRecord(ctx, userPath(u.User), u, 0); err != nil {
		if err == errExists {
			return u, authErr(http.StatusConflict, "User %s already exists.", u.User)
		}
		return u, err
	}
	return u, nil
}

func (s *Server) createOrUpdateUser(ctx context.Context, u authUser) (authUser, bool, error) {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	if _, _, err := s.getUserRecord(ctx, u.User); err == nil {
		out, err := s.updateUserLocked(ctx, u)
		return out, false, err
	}
	out, err := s.createUserLocked(ctx, u)
	return out, true, err
}

func (s *Server) updateUser(ctx context.Context, u authUser) (authUser, error) {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	return s.updateUserLocked(ctx, u)
}

func (s *Server) updateUserLocked(ctx context.Context, u authUser) (authUser, error) {
	var out authUser
	err := retry(func() error {
		old, idx, err := s.getUserRecord(ctx, u.User)
		if err != nil {
			if ae, ok := err.(*authError); ok && ae.status == http.StatusNotFound {
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
			return authErr(http.StatusBadRequest, "User not updated. Use grant/revoke/password to update the user.")
		}
		out = nu
		return s.writeRecord(ctx, userPath(u.User), nu, idx)
	})
	return out, err
}

// merge is etcd's User.merge: a new password is hashed, grants and
// revokes apply to the role set, and the roles come out sorted.
func (ou authUser) merge(nu authUser) (authUser, error) {
	var out authUser
	if ou.User != nu.User {
		return out, authErr(http.StatusConflict, "Merging user data with conflicting usernames: %s %s", ou.User, nu.User)
	}
	out.User = ou.User
	if nu.Password != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(nu.Password), bcrypt.DefaultCost)
		if err != nil {
			return ou, fmt.Errorf("auth: hash password: %w", err)
		}
		out.Password = string(hash)
	} else {
		out.Password = ou.Password
	}
	roles := newSet(ou.Roles)
	for _, g := range nu.Grant {
		if roles[g] {
			return authUser{}, authErr(http.StatusConflict, "Granting duplicate role %s for user %s", g, nu.User)
		}
		roles[g] = true
	}
	for _, r := range nu.Revoke {
		if !roles[r] {
			return authUser{}, authErr(http.StatusConflict, "Revoking ungranted role %s for user %s", r, nu.User)
		}
		delete(roles, r)
	}
	out.Roles = roles.sorted()
	return out, nil
}

func (s *Server) deleteUser(ctx context.Context, name string) error {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	st, err := s.auth.state(ctx)
	if err != nil {
		return err
	}
	if st.enabled && name == rootRoleName {
		return authErr(http.StatusForbidden, "Cannot delete root user while auth is enabled.")
	}
	if err := s.deleteRecord(ctx, userPath(name)); err != nil {
		if err == errNotFound {
			return authErr(http.StatusNotFound, "User %s does not exist", name)
		}
		return err
	}
	return nil
}

func (s *Server) createRole(ctx context.Context, r authRole) error {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	return s.createRoleLocked(ctx, r)
}

func (s *Server) createRoleLocked(ctx context.Context, r authRole) error {
	if r.Role == rootRoleName {
		return authErr(http.StatusForbidden, "Cannot modify role %s: is root role.", r.Role)
	}
	if err := s.writeRecord(ctx, rolePath(r.Role), r, 0); err != nil {
		if err == errExists {
			return authErr(http.StatusConflict, "Role %s already exists.", r.Role)
		}
		return err
	}
	return nil
}

func (s *Server) deleteRole(ctx context.Context, name string) error {
	if name == rootRoleName {
		return authErr(http.StatusForbidden, "Cannot modify role %s: is root role.", name)
	}
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	if err := s.deleteRecord(ctx, rolePath(name)); err != nil {
		if err == errNotFound {
			return authErr(http.StatusNotFound, "Role %s doesn't exist.", name)
		}
		return err
	}
	return nil
}

func (s *Server) updateRole(ctx context.Context, r authRole) (authRole, error) {
	if r.Role == rootRoleName {
		return authRole{}, authErr(http.StatusForbidden, "Cannot modify role %s: is root role.", r.Role)
	}
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	var out authRole
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
			return authErr(http.StatusBadRequest, "Role not updated. Use grant/revoke to update the role.")
		}
		out = nr
		return s.writeRecord(ctx, rolePath(r.Role), nr, idx)
	})
	return out, err
}

// merge is etcd's Role.merge: grants (duplicates refused), then revokes
// (ungranted ones ignored), each list sorted.
func (r authRole) merge(n authRole) (authRole, error) {
	var out authRole
	if r.Role != n.Role {
		return out, authErr(http.StatusConflict, "Merging role with conflicting names: %s %s", r.Role, n.Role)
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
		out.Permissions = authPermissions{KV: rwPermission{Read: read, Write: write}}
	}
	if n.Revoke != nil {
		kv := out.Permissions.KV
		out.Permissions = authPermissions{KV: rwPermission{
			Read: revokeList(kv.Read, n.Revoke.KV.Read), Write: revokeList(kv.Write, n.Revoke.KV.Write),
		}}
	}
	return out, nil
}

func grantList(have, add []string, kind string) ([]string, error) {
	set := newSet(have)
	for _, p := range add {
		if set[p] {
			return nil, authErr(http.StatusConflict, "Granting duplicate %s permission %s", kind, p)
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

// enableAuth is etcd's EnableAuth: it needs a root user and creates the
// guest role (full access) if there is none.
func (s *Server) enableAuth(ctx context.Context) error {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	st, err := s.auth.state(ctx)
	if err != nil {
		return err
	}
	if st.enabled {
		return authErr(http.StatusConflict, "already enabled")
	}
	if _, _, err := s.getUserRecord(ctx, rootRoleName); err != nil {
		return authErr(http.StatusConflict, "No root user available, please create one")
	}
	if _, _, err := s.getRoleRecord(ctx, guestRoleName); err != nil {
		if err := s.createRoleLocked(ctx, guestRole); err != nil {
			return err
		}
	}
	return s.setEnabled(ctx, true)
}

func (s *Server) disableAuth(ctx context.Context) error {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	st, err := s.auth.state(ctx)
	if err != nil {
		return err
	}
	if !st.enabled {
		return authErr(http.StatusConflict, "already disabled")
	}
	return s.setEnabled(ctx, false)
}

func (s *Server) setEnabled(ctx context.Context, on bool) error {
	v := "false"
	if on {
		v = "true"
	}
	if _, err := s.store.Propose(ctx, engine.Command{Op: engine.OpSet, Path: authEnabledPath, Value: v}); err != nil {
		return fmt.Errorf("auth: set enabled=%s: %w", v, err)
	}
	return nil
}
