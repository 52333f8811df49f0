package httpd

import (
	"context"
	"net/http"

	"github.com/strata-kv/strata/engine"
)

// allowKeys answers a keys request the caller may not make with etcd's
// 401 (error 110) and reports false; rawKey is the decoded request path
// after /v2/keys. A failure to read the auth data answers error 300.
func (s *Server) allowKeys(ctx context.Context, w http.ResponseWriter, authz, rawKey string, kr *keyRequest) bool {
	write := kr.method != http.MethodGet && kr.method != http.MethodHead
	ok, err := s.auth.KeyAccess(ctx, authz, rawKey, write, kr.recursive)
	if err != nil {
		writeError(w, err)
		return false
	}
	if !ok {
		writeErrorStatus(w, engine.NewError(engine.EcodeUnauthorized, "Insufficient credentials", 0), http.StatusUnauthorized)
		return false
	}
	return true
}
