package httpd

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/strata-kv/strata/engine"
)

const keysPrefix = "/v2/keys"

// maxTTL bounds ttl so that expirations stay representable (and inside
// the year 9999 that RFC 3339 can write): 100 years.
const maxTTL = 100 * 365 * 24 * 3600

// keyRequest is a parsed /v2/keys request.
type keyRequest struct {
	method           string
	path             string
	value            string
	prevValue        string
	prevIndex        uint64
	waitIndex        uint64
	prevExist        *bool
	refresh          bool
	ttl              *uint64
	dir              bool
	recursive        bool
	sorted           bool
	wait             bool
	quorum           bool
	stream           bool
	noValueOnSuccess bool
}

// form is a request's form values: the body's first, then the query
// string's, as Go's Request.ParseForm orders them (etcd relies on it).
type form interface {
	// get returns the first value of key and whether key is present.
	get(key string) (string, bool)
}

// valuesForm adapts url.Values.
type valuesForm url.Values

func (f valuesForm) get(key string) (string, bool) {
	v, ok := f[key]
	if !ok || len(v) == 0 {
		return "", ok
	}
	return v[0], true
}

// parseKeyRequest reads a keys request's parameters from a net/http
// request; see parseKeyParams.
func (s *Server) parseKeyRequest(r *http.Request) (*keyRequest, *engine.Error) {
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.refused(r.RemoteAddr, "request body too large", "limit", mbe.Limit)
			return nil, requestError(engine.EcodeInvalidForm, "request body too large")
		}
		return nil, requestError(engine.EcodeInvalidForm, err.Error())
	}
	return s.parseKeyParams(r.Method, r.URL.Path, valuesForm(r.Form))
}

// parseKeyParams reads a keys request's parameters, in the order etcd
// checks them so that a request with several faults gets etcd's error.
// urlPath is the decoded request path, "/v2/keys" included.
func (s *Server) parseKeyParams(method, urlPath string, f form) (*keyRequest, *engine.Error) {
	if !strings.HasPrefix(urlPath, keysPrefix) {
		return nil, requestError(engine.EcodeInvalidForm, "incorrect key prefix")
	}
	kr := &keyRequest{method: method, path: path.Join("/", urlPath[len(keysPrefix):])}
	var err error
	if kr.prevIndex, err = getUint64(f, "prevIndex"); err != nil {
		return nil, requestError(engine.EcodeIndexNaN, `invalid value for "prevIndex"`)
	}
	if kr.waitIndex, err = getUint64(f, "waitIndex"); err != nil {
		return nil, requestError(engine.EcodeIndexNaN, `invalid value for "waitIndex"`)
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{
		{"recursive", &kr.recursive}, {"sorted", &kr.sorted}, {"wait", &kr.wait},
		{"dir", &kr.dir}, {"quorum", &kr.quorum}, {"stream", &kr.stream},
	} {
		if *b.dst, err = getBool(f, b.name); err != nil {
			return nil, requestError(engine.EcodeInvalidField, `invalid value for "`+b.name+`"`)
		}
	}
	if kr.wait && method != http.MethodGet {
		return nil, requestError(engine.EcodeInvalidField, `"wait" can only be used with GET requests`)
	}
	var ok bool
	if kr.prevValue, ok = f.get("prevValue"); ok && kr.prevValue == "" {
		return nil, requestError(engine.EcodePrevValueRequired, `"prevValue" cannot be empty`)
	}
	if kr.noValueOnSuccess, err = getBool(f, "noValueOnSuccess"); err != nil {
		return nil, requestError(engine.EcodeInvalidField, `invalid value for "noValueOnSuccess"`)
	}
	if v, _ := f.get("ttl"); v != "" {
		ttl, err := strconv.ParseUint(v, 10, 64)
		if err != nil || ttl > maxTTL {
			return nil, requestError(engine.EcodeTTLNaN, `invalid value for "ttl"`)
		}
		kr.ttl = &ttl
	}
	if _, ok := f.get("prevExist"); ok {
		b, err := getBool(f, "prevExist")
		if err != nil {
			return nil, requestError(engine.EcodeInvalidField, "invalid value for prevExist")
		}
		kr.prevExist = &b
	}
	if _, ok := f.get("refresh"); ok {
		b, err := getBool(f, "refresh")
		if err != nil {
			return nil, requestError(engine.EcodeInvalidField, "invalid value for refresh")
		}
		kr.refresh = b
		if b {
			if v, _ := f.get("value"); v != "" {
				return nil, requestError(engine.EcodeRefreshValue, "A value was provided on a refresh")
			}
			if kr.ttl == nil {
				return nil, requestError(engine.EcodeRefreshTTLRequired, "No TTL value set")
			}
		}
	}
	kr.value, _ = f.get("value")
	// Beyond etcd: refuse what it would store but could never return intact.
	if verr := s.validKey(kr.path); verr != nil {
		return nil, verr
	}
	if !utf8.ValidString(kr.value) || !utf8.ValidString(kr.prevValue) {
		return nil, requestError(engine.EcodeInvalidField, "value is not valid UTF-8")
	}
	return kr, nil
}

func (s *Server) validKey(p string) *engine.Error {
	switch {
	case len(p) > s.cfg.MaxKeyBytes:
		s.refused("", "key too long", "bytes", len(p), "limit", s.cfg.MaxKeyBytes)
		return requestError(engine.EcodeInvalidField, "key is longer than "+strconv.Itoa(s.cfg.MaxKeyBytes)+" bytes")
	case !utf8.ValidString(p):
		return requestError(engine.EcodeInvalidField, "key is not valid UTF-8")
	case strings.IndexByte(p, 0) >= 0:
		return requestError(engine.EcodeInvalidField, "key contains a NUL byte")
	case strings.Count(p, "/") > s.cfg.MaxKeyDepth:
		s.refused("", "key too deep", "levels", strings.Count(p, "/"), "limit", s.cfg.MaxKeyDepth)
		return requestError(engine.EcodeInvalidField, "key has more than "+strconv.Itoa(s.cfg.MaxKeyDepth)+" levels")
	}
	return nil
}

func getUint64(f form, key string) (uint64, error) {
	if v, ok := f.get(key); ok {
		return strconv.ParseUint(v, 10, 64)
	}
	return 0, nil
}

func getBool(f form, key string) (bool, error) {
	if v, ok := f.get(key); ok {
		return strconv.ParseBool(v)
	}
	return false, nil
}

// command turns a write request into the engine command etcd's applier
// would run for it.
func (kr *keyRequest) command(now time.Time) engine.Command {
	c := engine.Command{
		Path: kr.path, Value: kr.value, Dir: kr.dir, PrevValue: kr.prevValue,
		PrevIndex: kr.prevIndex, Recursive: kr.recursive, Refresh: kr.refresh,
	}
	if kr.ttl != nil {
		c.Expiration = now.Add(time.Duration(*kr.ttl) * time.Second).UnixNano()
	}
	conditional := kr.prevIndex > 0 || kr.prevValue != ""
	switch kr.method {
	case http.MethodPost:
		c.Op, c.Unique = engine.OpCreate, true
	case http.MethodDelete:
		c.Op = engine.DeleteOp(conditional)
	default: // PUT
		c.Op = engine.PutOp(kr.prevExist, conditional)
	}
	return c
}

func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodHead, http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete:
	default:
		w.Header().Set("Allow", "HEAD,GET,PUT,POST,DELETE")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header()["X-Etcd-Cluster-Id"] = s.clusterIDHeader
	if s.cfg.MaxRequestBytes > 0 && r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
	}
	kr, verr := s.parseKeyRequest(r)
	if verr != nil {
		writeParseError(w, verr)
		return
	}
	if !s.allowKeys(r.Context(), w, r.Header.Get("Authorization"), r.URL.Path[len(keysPrefix):], kr) {
		return
	}
	if kr.wait {
		s.serveWatch(w, r, kr)
		return
	}
	s.serveKey(r.Context(), w, kr)
}

// writeParseError answers a request parseKeyRequest refused.
func writeParseError(w http.ResponseWriter, verr *engine.Error) {
	status := statusOf(verr.ErrorCode)
	if verr.Cause == "request body too large" {
		status = http.StatusRequestEntityTooLarge
	}
	writeErrorStatus(w, verr, status)
}

// serveKey answers a read or a write that is not a watch.
func (s *Server) serveKey(ctx context.Context, w http.ResponseWriter, kr *keyRequest) {
	switch kr.method {
	case http.MethodGet, http.MethodHead:
		ev, err := s.store.Get(ctx, kr.path, kr.recursive, kr.sorted, kr.quorum)
		if err != nil {
			writeError(w, err)
			return
		}
		s.writeEvent(w, ev, false)
	default:
		// The store bounds how long a write may wait; the request's own
		// context ends it early if the client goes away.
		ev, err := s.store.Propose(ctx, kr.command(time.Now()))
		if err != nil {
			writeError(w, err)
			return
		}
		s.writeEvent(w, ev, kr.noValueOnSuccess)
	}
}

// Header values shared by every response (net/http never modifies them).
var (
	jsonContentType = []string{"application/json"}
	bufPool         = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

// setIndexHeaders sets X-Etcd-Index, X-Raft-Index and X-Raft-Term. Keys are
// written in canonical form directly: Header.Set would canonicalize them
// on every response.
func (s *Server) setIndexHeaders(h http.Header, etcdIndex uint64) {
	ri, rt := s.store.RaftStatus()
	// One string and one backing array hold all three values.
	var buf [60]byte
	b := strconv.AppendUint(buf[:0], etcdIndex, 10)
	i1 := len(b)
	b = strconv.AppendUint(b, ri, 10)
	i2 := len(b)
	b = strconv.AppendUint(b, rt, 10)
	all := string(b)
	vals := [3]string{all[:i1], all[i1:i2], all[i2:]}
	h["Content-Type"] = jsonContentType
	h["X-Etcd-Index"] = vals[0:1:1]
	h["X-Raft-Index"] = vals[1:2:2]
	h["X-Raft-Term"] = vals[2:3:3]
}

func (s *Server) writeEvent(w http.ResponseWriter, ev *engine.Event, noValueOnSuccess bool) {
	s.setIndexHeaders(w.Header(), ev.EtcdIndex)
	out := ev
	if noValueOnSuccess {
		switch ev.Action {
		case engine.ActionSet, engine.ActionCompareAndSwap, engine.ActionCreate, engine.ActionUpdate:
			out = &engine.Event{Action: ev.Action}
		}
	}
	if ev.IsCreated() {
		w.WriteHeader(http.StatusCreated)
	}
	bp := bufPool.Get().(*[]byte)
	b := append(out.AppendJSON((*bp)[:0]), '\n')
	w.Write(b)
	if cap(b) <= 64<<10 { // do not pin huge listings in the pool
		*bp = b
		bufPool.Put(bp)
	}
}
