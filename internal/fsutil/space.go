package fsutil

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// IsNoSpace reports whether err says the file system is full or the
// user's quota is used up (ENOSPC, EDQUOT). Storage libraries that do not
// wrap the errno are recognised by strerror's text.
func IsNoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, unix.ENOSPC.Error()) || strings.Contains(s, unix.EDQUOT.Error())
}

// FreeBytes returns the bytes available to an unprivileged user on the
// file system holding path.
func FreeBytes(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}
