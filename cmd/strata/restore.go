package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/strata-kv/strata/server"
)

// restoreBackup writes a new data dir from --restore FILE before the member
// starts on it: a single-member cluster holding the backup's key space (see
// server.Restore). The data dir must not exist or be empty, so a restart
// with the same flags fails rather than silently restoring again.
func restoreBackup(o *options, peerURLs []string, stdout io.Writer, log *slog.Logger) error {
	f, err := os.Open(o.restoreFile)
	if err != nil {
		return fmt.Errorf("--restore: %w", err)
	}
	defer f.Close()
	res, err := server.Restore(f, server.RestoreConfig{
		DataDir: o.dataDir, Backend: o.backend, PeerURLs: peerURLs, ClusterToken: o.token, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("--restore %s: %w", o.restoreFile, err)
	}
	fmt.Fprintf(stdout, "strata: restored %s into %s (backend %s): raft index %d, %d records, sha256 %x; new cluster %x, member %x\n",
		o.restoreFile, o.dataDir, o.backend, res.Index, res.Records, res.SHA256, res.ClusterID, res.MemberID)
	return nil
}
