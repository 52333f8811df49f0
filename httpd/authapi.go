package httpd

import (
	"context"
	"encoding/json"
	"net/http"
	"path"
	"strings"

	"github.com/strata-kv/strata/auth"
	"github.com/strata-kv/strata/engine"
)

// The /v2/auth endpoints, answered as etcd 3.4's v2http does: same routes,
// order of checks, status codes, messages and JSON. The model and its
// changes are package auth's; this file only adapts HTTP to it.

const authPrefix = "/v2/auth"

// writeHTTPError is etcd's httptypes.HTTPError.WriteTo, for the auth and
// members APIs: {"message":...}, no trailing newline.
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
	case *auth.Error:
		writeHTTPError(w, e.Status, e.Message)
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
	ok, err := s.auth.RootAccess(r.Context(), r.Header.Get("Authorization"))
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
	st, err := s.auth.State(r.Context())
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	switch r.Method {
	case "GET":
		writeAuthJSON(w, struct {
			Enabled bool `json:"enabled"`
		}{st.Enabled()})
	case "PUT":
		if err := s.auth.Enable(r.Context()); err != nil {
			writeAuthAPIError(w, err)
		}
	case "DELETE":
		if err := s.auth.Disable(r.Context()); err != nil {
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
	s.serveAuthCollection(w, r, s.listUsers, s.getUser, s.putUser, s.auth.DeleteUser)
}

func (s *Server) handleAuthRoles(w http.ResponseWriter, r *http.Request) {
	s.serveAuthCollection(w, r, s.listRoles, s.getRole, s.putRole, s.auth.DeleteRole)
}

// serveAuthCollection answers /v2/auth/users[/name] or /v2/auth/roles[/name]
// in etcd's order of checks: path, method, root access, then the action.
func (s *Server) serveAuthCollection(w http.ResponseWriter, r *http.Request,
	list func(http.ResponseWriter, *http.Request),
	get, put func(http.ResponseWriter, *http.Request, string),
	del func(context.Context, string) error) {
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
		list(w, r)
		return
	}
	if !allowMethod(w, r.Method, "GET", "PUT", "DELETE") || !s.checkRoot(w, r, true) {
		return
	}
	s.authHeaders(w)
	switch r.Method {
	case "GET":
		get(w, r, name)
	case "PUT":
		put(w, r, name)
	case "DELETE":
		if err := del(r.Context(), name); err != nil {
			writeAuthAPIError(w, err)
		}
	}
}

func (s *Server) getRole(w http.ResponseWriter, r *http.Request, name string) {
	st, err := s.auth.State(r.Context())
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	role, ok := st.Role(name)
	if !ok {
		writeAuthAPIError(w, auth.Errorf(http.StatusNotFound, "Role %s does not exist.", name))
		return
	}
	writeAuthJSON(w, role)
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	st, err := s.auth.State(r.Context())
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	writeAuthJSON(w, struct {
		Users []auth.UserWithRoles `json:"users"`
	}{st.Users()})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, name string) {
	st, err := s.auth.State(r.Context())
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	u, err := st.User(name)
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	writeAuthJSON(w, u)
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request) {
	st, err := s.auth.State(r.Context())
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	writeAuthJSON(w, struct {
		Roles []*auth.Role `json:"roles"`
	}{st.Roles()})
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
	var u auth.User
	if !s.readAuthBody(w, r, &u) {
		return
	}
	if u.User != name {
		writeHTTPError(w, http.StatusBadRequest, "User JSON name does not match the name in the URL")
		return
	}
	var (
		out     auth.User
		created bool
		err     error
	)
	ctx := r.Context()
	if len(u.Grant) == 0 && len(u.Revoke) == 0 {
		if len(u.Roles) != 0 {
			out, err = s.auth.CreateUser(ctx, u)
		} else {
			out, created, err = s.auth.CreateOrUpdateUser(ctx, u)
		}
	} else {
		if len(u.Roles) != 0 {
			writeHTTPError(w, http.StatusBadRequest, "User JSON contains both roles and grant/revoke")
			return
		}
		out, err = s.auth.UpdateUser(ctx, u)
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
	var in auth.Role
	if !s.readAuthBody(w, r, &in) {
		return
	}
	if in.Role != name {
		writeHTTPError(w, http.StatusBadRequest, "Role JSON name does not match the name in the URL")
		return
	}
	ctx := r.Context()
	if in.Grant.IsEmpty() && in.Revoke.IsEmpty() {
		if err := s.auth.CreateRole(ctx, in); err != nil {
			writeAuthAPIError(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
		writeAuthJSON(w, in)
		return
	}
	if !in.Permissions.IsEmpty() {
		writeHTTPError(w, http.StatusBadRequest, "Role JSON contains both permissions and grant/revoke")
		return
	}
	out, err := s.auth.UpdateRole(ctx, in)
	if err != nil {
		writeAuthAPIError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
	writeAuthJSON(w, out)
}
