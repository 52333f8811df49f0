package backends

import (
	"errors"
)

// ErrIndexBackwards is returned by Update when its appliedIndex is lower
// than AppliedIndex; fn is not run and nothing changes. An equal index is
// allowed, so re-applying the same raft entry is not an error.
var ErrIndexBackwards = errors.New("applied index goes backwards")

// ErrUnsafeShutdown is wrapped by Open's error when a backend's files may
// be corrupt because the machine went down while they held unsynced
// commits (possible only with UnsafeNoFsync): the caller may rebuild the
// store from the raft log rather than trust it.
var ErrUnsafeShutdown = errors.New("machine restarted while the store held unsynced commits")
