package httpd

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/strata-kv/strata/auth"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/membership"
)

// Config holds the HTTP API's limits and identity.
type Config struct {
	// MaxRequestBytes caps a request body (default 1.5 MiB, as etcd's
	// --max-request-bytes); larger bodies get 413 and error 210.
	MaxRequestBytes int64
	// MaxKeyBytes caps a key's length (default 8 KiB).
	MaxKeyBytes int
	// Version is reported by /version as etcdserver; ClusterVersion as
	// etcdcluster.
	Version, ClusterVersion string
	// CORS lists the origins whose requests get etcd's
	// Access-Control-Allow-* headers ("*": every request); empty: none.
	// OPTIONS is answered 200 on every path either way, as etcd does.
	CORS []string
	// Metrics, if set, receives the request metrics (metrics.go) and is
	// served at GET /metrics.
	Metrics *prometheus.Registry
	// MaxURIBytes caps the request target (default 64 KiB): 414 beyond.
	MaxURIBytes int
	// MaxHeaders caps the number of request header lines (default 200):
	// 431 beyond. The total header size is capped by http.Server.
	MaxHeaders int
	// MaxKeyDepth caps a key's levels (default and at most
	// engine.MaxDepth); deeper keys get 400 and error 209.
	MaxKeyDepth int
	// MaxWatchers caps the watches open at once on this server, over
	// every connection and protocol (default 100,000); one more gets 429.
	MaxWatchers int
	// Logger receives one line per refused request (limits, rate-limited)
	// and per failed TLS handshake; nil discards them.
	Logger *slog.Logger
}

// Server serves the v2 API over a Store and a Cluster.
type Server struct {
	cfg     Config
	store   Store
	cluster Cluster
	handler http.Handler
	metrics *requestMetrics
	done    chan struct{}
	auth    *auth.Store
	// clusterIDHeader is X-Etcd-Cluster-Id's value, formatted once.
	clusterIDHeader []string
	log             *slog.Logger
	limitLog        limitLogger
	watchers        atomic.Int64 // open watches, against MaxWatchers
	cors            corsPolicy
}

// New builds the API handler.
func New(cfg Config, store Store, cluster Cluster) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, store: store, cluster: cluster, done: make(chan struct{}), auth: auth.New(store), log: cfg.Logger,
		cors: newCORSPolicy(cfg.CORS)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cluster != nil {
		s.clusterIDHeader = []string{strconv.FormatUint(cluster.ClusterID(), 16)}
	}
	s.metrics = newRequestMetrics()
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(s.metrics)
	}
	// CORS outermost, as etcd's accessController: OPTIONS is answered
	// before path cleaning and limits, and every answer carries the headers.
	s.handler = &corsHandler{next: s.limits(cleanPaths(s.router())), policy: &s.cors}
	return s
}

// withDefaults fills in the limits and versions left zero.
func (cfg Config) withDefaults() Config {
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = 3 << 19 // 1.5 MiB
	}
	if cfg.MaxKeyBytes == 0 {
		cfg.MaxKeyBytes = 8 << 10
	}
	if cfg.MaxURIBytes == 0 {
		cfg.MaxURIBytes = 64 << 10
	}
	if cfg.MaxHeaders == 0 {
		cfg.MaxHeaders = 200
	}
	if cfg.MaxKeyDepth <= 0 || cfg.MaxKeyDepth > engine.MaxDepth {
		cfg.MaxKeyDepth = engine.MaxDepth
	}
	if cfg.MaxWatchers <= 0 {
		cfg.MaxWatchers = DefaultMaxWatchers
	}
	if cfg.Version == "" {
		cfg.Version = membership.EtcdVersion
	}
	if cfg.ClusterVersion == "" {
		cfg.ClusterVersion = membership.EtcdClusterVersion
	}
	return cfg
}

// limits answers requests beyond the URI and header-count caps with a
// clean 414 or 431 before any parsing work is done.
func (s *Server) limits(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.RequestURI) > s.cfg.MaxURIBytes {
			s.refused(r.RemoteAddr, "request target too long", "bytes", len(r.RequestURI), "limit", s.cfg.MaxURIBytes)
			http.Error(w, "URI Too Long", http.StatusRequestURITooLong)
			return
		}
		n := 0
		for _, v := range r.Header {
			n += len(v)
		}
		if n > s.cfg.MaxHeaders {
			s.refused(r.RemoteAddr, "too many header lines", "lines", n, "limit", s.cfg.MaxHeaders)
			http.Error(w, "Request Header Fields Too Large", http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeHTTP implements http.Handler.
// Every request is counted and timed (metrics.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.metrics.serve(s.handler, w, r) }

// Close ends open watches so a graceful shutdown does not wait on them.
func (s *Server) Close() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// cleanPaths redirects paths with "//", "." or ".." to their clean form
// (as etcd's mux does) so nothing is ever written under an unclean key.
func cleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if cp := cleanPath(p); cp != p {
			u := *r.URL
			u.Path = cp
			u.RawPath = ""
			http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeStatsJSON(w, struct {
		Server  string `json:"etcdserver"`
		Cluster string `json:"etcdcluster"`
	}{s.cfg.Version, s.cfg.ClusterVersion})
}

// handleHealth answers as etcd does: JSON sent as text/plain.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.cluster.Healthy(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "{\"health\":\"false\",\"reason\":%q}", err.Error())
		return
	}
	w.Write([]byte(`{"health":"true"}`))
}

type memberJSON struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
}

func (s *Server) handleMembers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Etcd-Cluster-Id", strconv.FormatUint(s.cluster.ClusterID(), 16))
	ms := s.cluster.Members()
	out := struct {
		Members []memberJSON `json:"members"`
	}{Members: make([]memberJSON, 0, len(ms))}
	for _, m := range ms {
		out.Members = append(out.Members, toMemberJSON(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleMachines(w http.ResponseWriter, r *http.Request) {
	var urls []string
	for _, m := range s.cluster.Members() {
		urls = append(urls, m.ClientURLs...)
	}
	sort.Strings(urls) // etcd sorts them as strings, not by member ID
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(strings.Join(urls, ", ")))
}

func (s *Server) handleSelfStats(w http.ResponseWriter, r *http.Request) {
	writeStatsJSON(w, s.cluster.SelfStats())
}

func (s *Server) handleLeaderStats(w http.ResponseWriter, r *http.Request) {
	st, ok := s.cluster.LeaderStats()
	if !ok {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "not current leader"})
		return
	}
	writeStatsJSON(w, st)
}

func (s *Server) handleStoreStats(w http.ResponseWriter, r *http.Request) {
	writeStatsJSON(w, s.cluster.StoreStats())
}
