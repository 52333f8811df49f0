package main

// strata import-etcd: build a Strata data dir from a stopped etcd member's
// data dir, v2 key space, indexes and auth intact. See
// docs/migrating-from-etcd.md.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/internal/etcddata"
	"github.com/strata-kv/strata/server"
)

func init() { subcommands["import-etcd"] = importEtcd }

const importUsage = `usage: strata import-etcd --etcd-data-dir DIR --data-dir NEWDIR --backend NAME

Reads the data dir of a stopped etcd 3.3-3.5 member (its newest snapshot
and the committed WAL entries after it) and writes NEWDIR (new or empty):
a single-member Strata cluster on backend NAME serving the same v2 key
space at the same indexes (hidden keys, TTL deadlines, X-Etcd-Index, v2
auth users, roles and the enabled flag). Start strata on it with the same
--initial-advertise-peer-urls and --initial-cluster-token.

`

func importEtcd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata import-etcd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, importUsage)
		fs.PrintDefaults()
	}
	from := fs.String("etcd-data-dir", "", "data dir of the stopped etcd member (etcd --data-dir)")
	to := fs.String("data-dir", "", "new Strata data dir to create (must not exist or be empty)")
	backend := fs.String("backend", "", "backend of the new data dir: "+fmt.Sprint(backends.Names()))
	peers := fs.String("initial-advertise-peer-urls", "http://127.0.0.1:2380", "peer URLs the new member will advertise (its member ID is derived from them)")
	token := fs.String("initial-cluster-token", "etcd-cluster", "cluster token the new member will start with")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("import-etcd: unexpected argument %q", fs.Arg(0))
	case *from == "" || *to == "" || *backend == "":
		return errors.New("import-etcd: --etcd-data-dir, --data-dir and --backend are all required")
	}
	if !knownBackend(*backend) {
		return fmt.Errorf("import-etcd: unknown backend %q (have %v)", *backend, backends.Names())
	}
	peerURLs, err := parseURLs("initial-advertise-peer-urls", *peers)
	if err != nil {
		return fmt.Errorf("import-etcd: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("import-etcd: --log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := runImport(*from, *to, *backend, peerURLs, *token, log, stdout); err != nil {
		return fmt.Errorf("import-etcd %s: %w", *from, err)
	}
	return nil
}

// targetInUse refuses an existing non-empty target before the source is
// read (server.Restore checks again when it creates it).
func targetInUse(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("target %s: %w", dir, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("target %s exists and is not empty", dir)
	}
	return nil
}

func runImport(from, to, backend string, peerURLs []string, token string, log *slog.Logger, out io.Writer) error {
	start := time.Now()
	if err := targetInUse(to); err != nil {
		return err
	}
	im, err := etcddata.Load(from)
	if err != nil {
		return err
	}
	defer im.Close()
	loaded := time.Since(start)
	pr, pw := io.Pipe()
	go func() {
		_, err := im.Engine.Snapshot(pw)
		pw.CloseWithError(err)
	}()
	res, err := server.Restore(pr, server.RestoreConfig{
		DataDir: to, Backend: backend, PeerURLs: peerURLs, ClusterToken: token, Logger: log,
	})
	pr.CloseWithError(errors.New("restore ended"))
	if err != nil {
		return err
	}
	snap := "no snapshot"
	if im.Snapshot != "" {
		snap = fmt.Sprintf("snapshot %s (raft index %d, %d nodes, %d history events)", im.Snapshot, im.SnapIndex, im.Nodes, im.HistoryEvents)
	}
	fmt.Fprintf(out, "strata import-etcd: %s: %s, %d WAL files, %d v2 writes replayed (%d v3 requests skipped) to raft index %d; v2 index %d\n",
		from, snap, im.WALFiles, im.Replayed, im.V3Entries, im.RaftIndex, im.StoreIndex)
	fmt.Fprintf(out, "strata import-etcd: wrote %s (backend %s): %d records, sha256 %x; new cluster %x, member %x; read %.2fs, total %.2fs\n",
		to, backend, res.Records, res.SHA256[:8], res.ClusterID, res.MemberID, loaded.Seconds(), time.Since(start).Seconds())
	return nil
}
