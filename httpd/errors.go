package httpd

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/strata-kv/strata/engine"
)

// statusOf maps an etcd error code to its HTTP status, as etcd does;
// codes not listed are 400.
func statusOf(code int) int {
	switch code {
	case engine.EcodeKeyNotFound:
		return http.StatusNotFound
	case engine.EcodeNotFile, engine.EcodeDirNotEmpty:
		return http.StatusForbidden
	case engine.EcodeUnauthorized:
		return http.StatusUnauthorized
	case engine.EcodeTestFailed, engine.EcodeNodeExist:
		return http.StatusPreconditionFailed
	case engine.EcodeRaftInternal, engine.EcodeLeaderElect:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// writeError answers with etcd's error JSON. Errors that are not API
// errors become 300 (Raft Internal Error), as in etcd.
func writeError(w http.ResponseWriter, err error) {
	e, ok := err.(*engine.Error)
	if !ok {
		e = engine.NewError(engine.EcodeRaftInternal, err.Error(), 0)
	}
	writeErrorStatus(w, e, statusOf(e.ErrorCode))
}

func writeErrorStatus(w http.ResponseWriter, e *engine.Error, status int) {
	b, _ := json.Marshal(e)
	h := w.Header()
	h.Set("X-Etcd-Index", strconv.FormatUint(e.Index, 10))
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// requestError is an error found while parsing: index 0, as etcd.
func requestError(code int, cause string) *engine.Error {
	return engine.NewError(code, cause, 0)
}

// writeStatsJSON answers /version and /v2/stats/* as etcd does: 200, the
// JSON with no trailing newline.
func writeStatsJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
