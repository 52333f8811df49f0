package httpd

import (
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// route is one endpoint of the API: the router, the 405 answers and the
// request metrics all read this one table.
type route struct {
	path    string // exact path; also the endpoint's metrics label
	tree    bool   // paths below path/ are this endpoint's too
	methods []string
	handler func(*Server) http.HandlerFunc
	// allow is etcd 3.4's Allow header when the router refuses a method;
	// "" for endpoints that take every method and answer 405 themselves.
	allow string
}

// anyMethod is every method net/http parses, as etcd's handlers see them.
var anyMethod = []string{"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}

var getOnly = []string{"GET"}

var routes = []route{
	{keysPrefix, true, anyMethod, func(s *Server) http.HandlerFunc { return s.handleKeys }, ""},
	{"/v2/auth/enable", false, anyMethod, func(s *Server) http.HandlerFunc { return s.handleAuthEnable }, ""},
	{"/v2/auth/users", true, anyMethod, func(s *Server) http.HandlerFunc { return s.handleAuthUsers }, ""},
	{"/v2/auth/roles", true, anyMethod, func(s *Server) http.HandlerFunc { return s.handleAuthRoles }, ""},
	{"/v2/members", true, anyMethod, func(s *Server) http.HandlerFunc { return s.serveMembers }, ""},
	{"/version", false, getOnly, func(s *Server) http.HandlerFunc { return s.handleVersion }, "GET"},
	{"/health", false, getOnly, func(s *Server) http.HandlerFunc { return s.handleHealth }, "GET"},
	{"/v2/machines", false, []string{"GET", "HEAD"}, func(s *Server) http.HandlerFunc { return s.handleMachines }, "GET,HEAD"},
	{"/v2/stats/self", false, getOnly, func(s *Server) http.HandlerFunc { return s.handleSelfStats }, "GET"},
	{"/v2/stats/leader", false, getOnly, func(s *Server) http.HandlerFunc { return s.handleLeaderStats }, "GET"},
	{"/v2/stats/store", false, getOnly, func(s *Server) http.HandlerFunc { return s.handleStoreStats }, "GET"},
	{snapshotPath, false, getOnly, func(s *Server) http.HandlerFunc { return s.handleSnapshot }, "GET"},
	// etcd's promhttp handler answers any method (OPTIONS never reaches it:
	// the CORS handler answers it first); registered only with a registry.
	{"/metrics", false, anyMethod, func(s *Server) http.HandlerFunc {
		if s.cfg.Metrics == nil {
			return nil
		}
		return metricsHandler(s.cfg.Metrics).ServeHTTP
	}, ""},
}

// router routes the v2 API's paths to s's handlers.
func (s *Server) router() *httprouter.Router {
	rt := httprouter.New()
	rt.RedirectTrailingSlash = false
	rt.RedirectFixedPath = false
	rt.HandleOPTIONS = false
	allow := map[string]string{}
	for _, r := range routes {
		h := r.handler(s)
		if h == nil {
			continue
		}
		for _, m := range r.methods {
			rt.Handler(m, r.path, h)
			if r.tree {
				rt.Handler(m, r.path+"/*rest", h)
			}
		}
		if r.allow != "" {
			allow[r.path] = r.allow
		}
	}
	rt.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if a, ok := allow[req.URL.Path]; ok {
			w.Header().Set("Allow", a) // httprouter's own text differs from etcd's
		}
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	})
	return rt
}

// endpointOf names the route a request is for, with bounded cardinality:
// a route's path, keys watches apart, or "other".
func endpointOf(r *http.Request) string {
	p := r.URL.Path
	for i := range routes {
		rt := &routes[i]
		if p != rt.path && !(rt.tree && strings.HasPrefix(p, rt.path) && len(p) > len(rt.path) && p[len(rt.path)] == '/') {
			continue
		}
		if rt.path == keysPrefix && r.Method == http.MethodGet && strings.Contains(r.URL.RawQuery, "wait") && r.URL.Query().Get("wait") == "true" {
			return keysPrefix + "?wait=true"
		}
		return rt.path
	}
	return "other"
}

// methodLabel bounds the method label to the methods routes take.
func methodLabel(m string) string {
	for _, a := range anyMethod {
		if m == a {
			return m
		}
	}
	return "other"
}
