package procs

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// IsTmpfs reports whether path is on tmpfs, where fsyncs cost nothing and
// disk usage is RAM; false if it cannot tell.
func IsTmpfs(path string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == 0x01021994 // TMPFS_MAGIC
}

// RunDir makes a fresh directory for one run's data dirs and logs under
// root (created if missing), its name starting with prefix, and warns on w
// when root is tmpfs. cleanup removes the directory unless keep, and says
// on w what it kept or failed to remove.
func RunDir(root, prefix string, keep bool, w io.Writer) (dir string, cleanup func(), err error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", nil, fmt.Errorf("data root: %w", err)
	}
	if IsTmpfs(root) {
		fmt.Fprintf(w, "WARNING: %s is tmpfs: durable writes will not touch a disk (fsyncs cost nothing, disk usage is RAM)\n", root)
	}
	dir, err = os.MkdirTemp(root, prefix)
	if err != nil {
		return "", nil, fmt.Errorf("temp dir: %w", err)
	}
	return dir, func() {
		if keep {
			fmt.Fprintf(w, "kept data and logs in %s\n", dir)
		} else if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(w, "remove %s: %v\n", dir, err)
		}
	}, nil
}
