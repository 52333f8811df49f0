package backends

import (
	"errors"

	"github.com/strata-kv/strata/internal/fsutil"
)

// ErrIndexBackwards is returned by Update when its appliedIndex is lower
// than AppliedIndex; fn is not run and nothing changes. An equal index is
// allowed, so re-applying the same raft entry is not an error.
var ErrIndexBackwards = errors.New("applied index goes backwards")

// IsNoSpace reports whether a backend error means the disk is full
// (ENOSPC, or EDQUOT): the same Update may succeed once space returns.
func IsNoSpace(err error) bool { return fsutil.IsNoSpace(err) }
