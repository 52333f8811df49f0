//go:build !unix

package tlsutil

import "os"

func inode(os.FileInfo) (int64, bool) { return 0, false }
