package backends

import "errors"

// ErrIndexBackwards is returned by Update when its appliedIndex is lower
// than AppliedIndex; fn is not run and nothing changes. An equal index is
// allowed, so re-applying the same raft entry is not an error.
var ErrIndexBackwards = errors.New("applied index goes backwards")
