package main

// strata import-etcd: build a Strata data dir from a stopped etcd member's
// data dir, v2 key space, indexes and auth intact. See
// docs/migrating-from-etcd.md.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/strata-kv/strata/backends"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/internal/etcddata"
	"github.com/strata-kv/strata/internal/etcdmirror"
	"github.com/strata-kv/strata/internal/tlsutil"
	"github.com/strata-kv/strata/server"
)

func init() { subcommands["import-etcd"] = importEtcd }

const importUsage = `usage: strata import-etcd --etcd-data-dir DIR --data-dir NEWDIR --backend NAME
       strata import-etcd --from-url URL[,URL...] --data-dir NEWDIR --backend NAME

Writes NEWDIR (new or empty): a single-member Strata cluster on backend
NAME serving an etcd's v2 key space at the same indexes. Start strata on it
with the same --initial-advertise-peer-urls and --initial-cluster-token.

--etcd-data-dir reads the data dir of a stopped etcd 3.3-3.5 member (its
newest snapshot and the committed WAL entries after it): hidden keys, TTL
deadlines, X-Etcd-Index, etcd's event history, v2 auth users, roles and
the enabled flag.

--from-url reads a running etcd over its v2 API: one recursive GET, then
every event after it, until SIGINT or SIGTERM (Ctrl-C) cuts over; stop
the clients writing to etcd first. It cannot carry hidden keys written
before it started, auth users and roles, or etcd's history before the GET
(docs/migrating-from-etcd.md).

`

func importEtcd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := subcommandFlags("strata import-etcd", importUsage, stderr)
	from := fs.String("etcd-data-dir", "", "data dir of the stopped etcd member (etcd --data-dir)")
	fromURL := fs.String("from-url", "", "client URLs of a running etcd to read over its v2 API instead of a data dir")
	user := fs.String("username", "", "with --from-url: USER:PASSWORD for etcd's v2 auth")
	skipAuth := fs.Bool("skip-auth", false, "with --from-url: import from an etcd with v2 auth enabled, leaving its users and roles behind")
	var tlsInfo tlsutil.Info
	fs.StringVar(&tlsInfo.TrustedCAFile, "ca-file", "", "with --from-url: CA bundle to verify etcd's certificate")
	fs.StringVar(&tlsInfo.CertFile, "cert-file", "", "with --from-url: client certificate for etcd")
	fs.StringVar(&tlsInfo.KeyFile, "key-file", "", "with --from-url: client key for etcd")
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
	case (*from == "") == (*fromURL == ""):
		return errors.New("import-etcd: give one of --etcd-data-dir and --from-url")
	case *to == "" || *backend == "":
		return errors.New("import-etcd: --data-dir and --backend are required")
	}
	if err := checkBackend("import-etcd", *backend); err != nil {
		return err
	}
	peerURLs, err := parseURLs("initial-advertise-peer-urls", *peers)
	if err != nil {
		return fmt.Errorf("import-etcd: %w", err)
	}
	log, err := subcommandLogger("import-etcd", *logLevel, stderr)
	if err != nil {
		return err
	}
	w := importTarget{dir: *to, backend: *backend, peerURLs: peerURLs, token: *token, log: log, out: stdout}
	if *fromURL == "" {
		if err := w.fromDataDir(*from); err != nil {
			return fmt.Errorf("import-etcd %s: %w", *from, err)
		}
		return nil
	}
	eps, err := parseURLs("from-url", *fromURL)
	if err != nil {
		return fmt.Errorf("import-etcd: %w", err)
	}
	cfg := etcdmirror.Config{Endpoints: eps, SkipAuth: *skipAuth, Log: log}
	if *user != "" {
		var ok bool
		if cfg.Username, cfg.Password, ok = strings.Cut(*user, ":"); !ok {
			return errors.New("import-etcd: --username takes USER:PASSWORD")
		}
	}
	if tlsInfo.TrustedCAFile != "" || tlsInfo.CertFile != "" {
		if cfg.TLS, err = tlsInfo.ClientConfig(); err != nil {
			return fmt.Errorf("import-etcd: %w", err)
		}
	}
	if err := w.fromURL(ctx, cfg, stderr); err != nil {
		return fmt.Errorf("import-etcd %s: %w", *fromURL, err)
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

// importTarget is the Strata data dir an import writes.
type importTarget struct {
	dir, backend string
	peerURLs     []string
	token        string
	log          *slog.Logger
	out          io.Writer
}

func (w importTarget) fromDataDir(from string) error {
	start := time.Now()
	if err := targetInUse(w.dir); err != nil {
		return err
	}
	im, err := etcddata.Load(from)
	if err != nil {
		return err
	}
	defer im.Close()
	loaded := time.Since(start)
	res, err := w.write(im.Engine)
	if err != nil {
		return err
	}
	snap := "no snapshot"
	if im.Snapshot != "" {
		snap = fmt.Sprintf("snapshot %s (raft index %d, %d nodes, %d history events)", im.Snapshot, im.SnapIndex, im.Nodes, im.HistoryEvents)
	}
	fmt.Fprintf(w.out, "strata import-etcd: %s: %s, %d WAL files, %d v2 writes replayed (%d v3 requests skipped) to raft index %d; v2 index %d\n",
		from, snap, im.WALFiles, im.Replayed, im.V3Entries, im.RaftIndex, im.StoreIndex)
	w.wrote(res, "read", loaded, start)
	return nil
}

// write restores the engine's state into the target directory.
func (w importTarget) write(eng *engine.Engine) (server.RestoreResult, error) {
	pr, pw := io.Pipe()
	go func() {
		_, err := eng.Snapshot(pw)
		pw.CloseWithError(err)
	}()
	res, err := server.Restore(pr, server.RestoreConfig{
		DataDir: w.dir, Backend: w.backend, PeerURLs: w.peerURLs, ClusterToken: w.token, Logger: w.log,
	})
	pr.CloseWithError(errors.New("restore ended"))
	return res, err
}

// wrote reports the written dir; phase names what took the time before the
// write ("read" for a data dir, "followed and cut over" for --from-url).
func (w importTarget) wrote(res server.RestoreResult, phase string, took time.Duration, start time.Time) {
	fmt.Fprintf(w.out, "strata import-etcd: wrote %s (backend %s): %d records, sha256 %x; new cluster %x, member %x; %s %.2fs, total %.2fs\n",
		w.dir, w.backend, res.Records, res.SHA256[:8], res.ClusterID, res.MemberID, phase, took.Seconds(), time.Since(start).Seconds())
}
