package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-kv/strata/membership"
)

// MemberAdmin is implemented by a Cluster whose membership can change at
// run time (POST, DELETE and PUT on /v2/members). Its methods return once
// the change is applied on this member, or fail with one of the
// membership.Err* values (answered as etcd does) or any other error (500);
// they fail rather than wait beyond the member's request timeout.
type MemberAdmin interface {
	// AddMember adds a member with peerURLs and returns it (no name yet:
	// it gets one when it starts).
	AddMember(ctx context.Context, peerURLs []string) (membership.Member, error)
	RemoveMember(ctx context.Context, id uint64) error
	// UpdateMember replaces a member's peer URLs.
	UpdateMember(ctx context.Context, id uint64, peerURLs []string) error
	// LeaderMember is the current leader, false while there is none.
	LeaderMember() (membership.Member, bool)
}

// serveMembers answers /v2/members and /v2/members/<id> as etcd 3.4's v2
// members handler: GET lists (or /leader names the leader), POST adds
// ({"peerURLs": [...]} -> 201 and the new member), DELETE removes (204),
// PUT replaces peer URLs (204). Unknown IDs get 404, a removed one 410,
// a peer URL in use 409, bad bodies 400 or 415, other failures 500.
func (s *Server) serveMembers(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case "GET", "POST", "DELETE", "PUT":
	default:
		w.Header().Set("Allow", "GET,POST,DELETE,PUT")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Etcd-Cluster-Id", strconv.FormatUint(s.cluster.ClusterID(), 16))
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v2/members"), "/")
	admin, _ := s.cluster.(MemberAdmin)
	if r.Method != "GET" && admin == nil {
		writeHTTPError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	ctx := r.Context()
	switch r.Method {
	case "GET":
		s.getMembers(w, r, admin, rest)
	case "POST":
		addMember(ctx, w, r, admin)
	case "DELETE":
		removeMember(ctx, w, admin, rest)
	case "PUT":
		updateMember(ctx, w, r, admin, rest)
	}
}

// getMembers answers GET /v2/members and /v2/members/leader; admin may be nil.
func (s *Server) getMembers(w http.ResponseWriter, r *http.Request, admin MemberAdmin, rest string) {
	switch rest {
	case "":
		s.handleMembers(w, r)
	case "leader":
		if admin == nil {
			writeHTTPError(w, http.StatusServiceUnavailable, "During election")
			return
		}
		m, ok := admin.LeaderMember()
		if !ok {
			writeHTTPError(w, http.StatusServiceUnavailable, "During election")
			return
		}
		writeJSON(w, http.StatusOK, toMemberJSON(m))
	default:
		writeHTTPError(w, http.StatusNotFound, "Not found")
	}
}

// addMember answers POST /v2/members.
func addMember(ctx context.Context, w http.ResponseWriter, r *http.Request, admin MemberAdmin) {
	urls, ok := readPeerURLs(w, r)
	if !ok {
		return
	}
	m, err := admin.AddMember(ctx, urls)
	switch {
	case errors.Is(err, membership.ErrIDExists), errors.Is(err, membership.ErrPeerURLExists):
		writeHTTPError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeHTTPError(w, http.StatusInternalServerError, "Internal Server Error")
	default:
		writeJSON(w, http.StatusCreated, toMemberJSON(m))
	}
}

// removeMember answers DELETE /v2/members/<id>.
func removeMember(ctx context.Context, w http.ResponseWriter, admin MemberAdmin, rest string) {
	id, ok := memberID(w, rest)
	if !ok {
		return
	}
	memberChanged(w, id, admin.RemoveMember(ctx, id))
}

// updateMember answers PUT /v2/members/<id>.
func updateMember(ctx context.Context, w http.ResponseWriter, r *http.Request, admin MemberAdmin, rest string) {
	id, ok := memberID(w, rest)
	if !ok {
		return
	}
	urls, ok := readPeerURLs(w, r)
	if !ok {
		return
	}
	memberChanged(w, id, admin.UpdateMember(ctx, id, urls))
}

// memberChanged answers a member removal or update: 204, or etcd's status
// and message for err.
func memberChanged(w http.ResponseWriter, id uint64, err error) {
	switch {
	case errors.Is(err, membership.ErrIDRemoved):
		writeHTTPError(w, http.StatusGone, fmt.Sprintf("Member permanently removed: %x", id))
	case errors.Is(err, membership.ErrPeerURLExists):
		writeHTTPError(w, http.StatusConflict, err.Error())
	case errors.Is(err, membership.ErrNotFound):
		writeHTTPError(w, http.StatusNotFound, fmt.Sprintf("No such member: %x", id))
	case err != nil:
		writeHTTPError(w, http.StatusInternalServerError, "Internal Server Error")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func toMemberJSON(m membership.Member) memberJSON {
	peer, client := m.JSONURLs()
	return memberJSON{ID: strconv.FormatUint(m.ID, 16), Name: m.Name, PeerURLs: peer, ClientURLs: client}
}

// memberID parses the <id> of /v2/members/<id> as etcd's getID: none is
// 405, an unparsable one 404.
func memberID(w http.ResponseWriter, s string) (uint64, bool) {
	if s == "" {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return 0, false
	}
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		writeHTTPError(w, http.StatusNotFound, "No such member: "+s)
		return 0, false
	}
	return id, true
}

// readPeerURLs reads {"peerURLs": [...]} as etcd's unmarshalRequest and
// types.NewURLs: JSON only (415 otherwise), at least one URL, each with
// a known scheme, host:port and no path (400 with etcd's message
// otherwise). The URLs are returned sorted.
func readPeerURLs(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	ctype := r.Header.Get("Content-Type")
	if i := strings.Index(ctype, ";"); i != -1 {
		ctype = strings.TrimSpace(strings.ToLower(ctype[:i]))
	}
	if ctype != "application/json" {
		writeHTTPError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Bad Content-Type %s, accept application/json", ctype))
		return nil, false
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	var req struct {
		PeerURLs []string `json:"peerURLs"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		writeHTTPError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	if len(req.PeerURLs) == 0 {
		writeHTTPError(w, http.StatusBadRequest, "no valid URLs given")
		return nil, false
	}
	urls := make([]string, 0, len(req.PeerURLs))
	for _, in := range req.PeerURLs {
		in = strings.TrimSpace(in)
		u, err := url.Parse(in)
		switch {
		case err != nil:
			writeHTTPError(w, http.StatusBadRequest, err.Error())
			return nil, false
		case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix" && u.Scheme != "unixs":
			writeHTTPError(w, http.StatusBadRequest, "URL scheme must be http, https, unix, or unixs: "+in)
			return nil, false
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			writeHTTPError(w, http.StatusBadRequest, `URL address does not have the form "host:port": `+in)
			return nil, false
		}
		if u.Path != "" {
			writeHTTPError(w, http.StatusBadRequest, "URL must not contain a path: "+in)
			return nil, false
		}
		urls = append(urls, u.String())
	}
	sort.Strings(urls)
	return urls, true
}
