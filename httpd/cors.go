package httpd

import "net/http"

// corsPolicy decides, as etcd 3.4 does, which responses carry the
// Access-Control-Allow-* headers: all of them when "*" is allowed, else
// those to a request whose (first) Origin header is listed exactly.
type corsPolicy struct {
	any     bool
	origins map[string]bool
}

func newCORSPolicy(origins []string) corsPolicy {
	p := corsPolicy{origins: make(map[string]bool, len(origins))}
	for _, o := range origins {
		if o == "*" {
			p.any = true
		}
		p.origins[o] = true
	}
	return p
}

// needsOrigin reports whether the decision depends on the Origin header.
func (p *corsPolicy) needsOrigin() bool { return !p.any && len(p.origins) > 0 }

// etcd's values, shared by every response (never modified after).
var (
	corsMethods = []string{"POST, GET, OPTIONS, PUT, DELETE"}
	corsHeaders = []string{"accept, content-type, authorization"}
	corsAny     = []string{"*"}
)

// addHeaders sets the headers on h for a request from origin ("" if none).
func (p *corsPolicy) addHeaders(h http.Header, origin string) {
	var o []string
	switch {
	case p.any:
		o = corsAny
	case origin != "" && p.origins[origin]:
		o = []string{origin}
	default:
		return
	}
	h["Access-Control-Allow-Methods"] = corsMethods
	h["Access-Control-Allow-Origin"] = o
	h["Access-Control-Allow-Headers"] = corsHeaders
}

// corsHandler adds the headers and answers every OPTIONS request itself
// with an empty 200, whatever the path and whether or not CORS is on:
// etcd 3.4's accessController does both before its mux.
type corsHandler struct {
	next   http.Handler
	policy *corsPolicy
}

func (c *corsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.policy.addHeaders(w.Header(), r.Header.Get("Origin"))
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	c.next.ServeHTTP(w, r)
}
