package httpd

import (
	"bytes"
	"net/url"
	"strings"
)

// fastRequest is a request head the lean path accepted. parse refuses
// (returns false) anything whose meaning it does not fully decide, so
// that net/http answers it instead; refusing is always safe.
type fastRequest struct {
	method        string // one of the constants below, never allocated
	target        []byte // aliases the read buffer until the head is consumed
	contentLength int
	close         bool
	authz         string // the Authorization header's value, "" if none
	origin        string // the first Origin header's value, when CORS needs it
	form          fastForm
}

// parse reads a request head whose lines all end in CRLF (peekHead).
// Heads larger than the lean buffer go to net/http, so every head parsed
// here is within http.Server.MaxHeaderBytes: net/http allows
// MaxHeaderBytes plus 4096 bytes of slack, never less than this buffer.
func (r *fastRequest) parse(head []byte, s *Server) bool {
	line, rest, _ := bytes.Cut(head, crlf)
	m, line, ok := bytes.Cut(line, sp)
	if !ok {
		return false
	}
	method, ok := leanMethod(m)
	if !ok {
		return false
	}
	r.method = method
	target, proto, ok := bytes.Cut(line, sp)
	if !ok || string(proto) != "HTTP/1.1" || !leanTarget(target, s.cfg.MaxURIBytes) {
		return false
	}
	r.target, r.contentLength, r.close, r.authz, r.origin = target, 0, false, "", ""
	var h headCounts
	if !r.parseHeaders(rest, s, &h) {
		return false
	}
	if h.hosts != 1 || h.lengths > 1 || h.authzs > 1 {
		return false
	}
	return r.bodyAllowed(h.formType, s.cfg.MaxRequestBytes)
}

// leanMethod returns the method constant for m; the lean path serves only these.
func leanMethod(m []byte) (string, bool) {
	switch string(m) { // no allocation: the compiler compares in place
	case "GET":
		return "GET", true
	case "PUT":
		return "PUT", true
	case "POST":
		return "POST", true
	case "DELETE":
		return "DELETE", true
	}
	return "", false
}

// leanTarget reports whether target is a clean /v2/keys path the lean path
// may serve as is; anything net/http would redirect, refuse or judge is not.
func leanTarget(target []byte, maxURIBytes int) bool {
	if !keysTarget(target) {
		return false
	}
	if len(target) > maxURIBytes {
		return false // net/http's path answers 414 (limits)
	}
	for _, c := range target {
		// Controls, spaces, fragments and backslashes are net/http's to judge.
		if c <= ' ' || c == 0x7f || c == '#' || c == '\\' {
			return false
		}
	}
	p, _, _ := bytes.Cut(target, question)
	if bytes.IndexByte(p, '%') >= 0 {
		up, err := url.PathUnescape(string(p))
		if err != nil || cleanPath(up) != up {
			return false
		}
	} else if cleanPath(string(p)) != string(p) {
		return false
	}
	return true
}

// headCounts tallies the headers whose repetition or presence decides
// whether the lean path may answer.
type headCounts struct {
	hosts, lengths, authzs, origins int
	formType                        bool // a Content-Type was given (and is a form's)
}

// parseHeaders reads the header lines in rest into r and h.
func (r *fastRequest) parseHeaders(rest []byte, s *Server, h *headCounts) bool {
	n := 0
	needOrigin := s.cors.needsOrigin()
	for len(rest) > 2 { // the final CRLF remains
		var hl []byte
		hl, rest, _ = bytes.Cut(rest, crlf)
		if n++; n > s.cfg.MaxHeaders {
			return false // net/http answers 431
		}
		name, value, ok := bytes.Cut(hl, colon)
		if !ok || !validHeaderName(name) {
			return false
		}
		value = bytes.Trim(value, " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return false
			}
		}
		if !r.header(name, value, needOrigin, h) {
			return false
		}
	}
	return true
}

// header takes one header into r and h; false refuses the request.
func (r *fastRequest) header(name, value []byte, needOrigin bool, h *headCounts) bool {
	switch {
	case asciiEqualFold(name, "Host"):
		h.hosts++
		return validHost(value)
	case asciiEqualFold(name, "Content-Length"):
		h.lengths++
		cl, ok := parseContentLength(value)
		if !ok {
			return false
		}
		r.contentLength = cl
	case asciiEqualFold(name, "Content-Type"):
		h.formType = true
		mt, _, _ := bytes.Cut(value, semicolon)
		if !asciiEqualFold(bytes.TrimRight(mt, " \t"), "application/x-www-form-urlencoded") {
			return false
		}
	case asciiEqualFold(name, "Connection"):
		closes, ok := connectionTokens(value)
		if closes {
			r.close = true
		}
		return ok
	case asciiEqualFold(name, "Authorization"):
		// Checked by the same code as net/http's path (allowKeys).
		if h.authzs++; h.authzs == 1 {
			r.authz = string(value)
		}
	case needOrigin && asciiEqualFold(name, "Origin"):
		if h.origins++; h.origins == 1 { // Header.Get's choice
			r.origin = string(value)
		}
	case asciiEqualFold(name, "Transfer-Encoding"), asciiEqualFold(name, "Expect"),
		asciiEqualFold(name, "Upgrade"):
		return false
	}
	return true
}

// validHost reports whether a Host value is plain; anything unusual is
// net/http's to judge (its Host check).
func validHost(value []byte) bool {
	for _, c := range value {
		if c >= 0x80 || !hostChar[c] {
			return false
		}
	}
	return true
}

// parseContentLength decodes up to 9 decimal digits, nothing else.
func parseContentLength(value []byte) (int, bool) {
	if len(value) == 0 || len(value) > 9 {
		return 0, false
	}
	cl := 0
	for _, c := range value {
		if c < '0' || c > '9' {
			return 0, false
		}
		cl = cl*10 + int(c-'0')
	}
	return cl, true
}

// connectionTokens reports whether a Connection value asks to close, and
// false for any token other than close and keep-alive (upgrades and the like).
func connectionTokens(value []byte) (closes, ok bool) {
	for tok := range strings.SplitSeq(string(value), ",") {
		switch tok = strings.TrimSpace(tok); {
		case strings.EqualFold(tok, "close"):
			closes = true
		case strings.EqualFold(tok, "keep-alive"), tok == "":
		default:
			return closes, false
		}
	}
	return closes, true
}

// bodyAllowed reports whether a body, if any, is one the lean path reads.
func (r *fastRequest) bodyAllowed(formType bool, maxRequestBytes int64) bool {
	if r.contentLength > 0 {
		// net/http reads only POST, PUT and PATCH bodies as forms, and
		// answers the too-large ones with 413.
		// Without a Content-Type, net/http does not read the body as a form.
		if r.method != "PUT" && r.method != "POST" || int64(r.contentLength) > maxRequestBytes || !formType {
			return false
		}
	}
	return true
}

var (
	crlf      = []byte("\r\n")
	sp        = []byte(" ")
	colon     = []byte(":")
	question  = []byte("?")
	semicolon = []byte(";")
)

// keysTarget reports whether target is /v2/keys or below it.
func keysTarget(t []byte) bool {
	if !bytes.HasPrefix(t, []byte(keysPrefix)) {
		return false
	}
	return len(t) == len(keysPrefix) || t[len(keysPrefix)] == '/' || t[len(keysPrefix)] == '?'
}

// validHeaderName reports whether b is an RFC 7230 token.
func validHeaderName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

var hostChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range ".-:[]_" {
		t[c] = true
	}
	return t
}()

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// fastForm holds a request's form fields, body first, then query string,
// in order, as url.ParseQuery and Request.ParseForm would produce them.
// values, when set, replaces pairs (the slow, exact fallback).
type fastForm struct {
	pairs  [][2]string
	values url.Values
}

// parse splits body and query; it returns false for anything it does not
// decode exactly as url.ParseQuery (semicolons, bad escapes).
func (f *fastForm) parse(body, query string) bool {
	f.pairs, f.values = f.pairs[:0], nil
	return f.add(body) && f.add(query)
}

func (f *fastForm) add(q string) bool {
	if strings.IndexByte(q, ';') >= 0 {
		return false
	}
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		var ok bool
		if k, ok = unescapeQuery(k); !ok {
			return false
		}
		if v, ok = unescapeQuery(v); !ok {
			return false
		}
		f.pairs = append(f.pairs, [2]string{k, v})
	}
	return true
}

func unescapeQuery(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}

func (f *fastForm) get(key string) (string, bool) {
	if f.values != nil {
		return valuesForm(f.values).get(key)
	}
	for i := range f.pairs {
		if f.pairs[i][0] == key {
			return f.pairs[i][1], true
		}
	}
	return "", false
}
