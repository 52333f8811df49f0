// Command strata runs a Strata member: an etcd v2-compatible key-value
// server whose writes go through raft and whose storage is pluggable.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/strata-kv/strata/backends"
	_ "github.com/strata-kv/strata/backends/badger"
	_ "github.com/strata-kv/strata/backends/bbolt"
	_ "github.com/strata-kv/strata/backends/memory"
	"github.com/strata-kv/strata/engine"
	"github.com/strata-kv/strata/httpd"
	"github.com/strata-kv/strata/internal/tlsutil"
	"github.com/strata-kv/strata/server"
)

type options struct {
	name, dataDir                        string
	listenClient, advertiseClient        string
	listenPeer, advertisePeer            string
	initialCluster, clusterState, token  string
	backend                              string
	snapshotCount                        uint64
	watchHistory                         int
	maxRequestBytes                      int64
	maxKeyBytes                          int
	cors, logLevel                       string
	logFormat, restoreFile               string
	unsafeNoFsync, enablePprof           bool
	readHeaderTimeout, idleTimeout       time.Duration
	maxConcurrentStreams, maxHeaderBytes int
	maxWatchers, maxKeyDepth             int
	raft                                 raftFlags
	tls                                  tlsFlags
	configFile                           string
	version, forceNewCluster             bool
	maxSnapshots, maxWALs                uint
	spaceReserve, quotaBackendBytes      int64
	discovery, discoverySRV              string
	discoverySRVName                     string
	initialClusterSet                    bool

	// notes are warnings found while parsing (unknown ETCD_* variables
	// or config keys), logged once the logger exists; ignored lists the
	// compatibility flags that were set (compat.go).
	notes, ignored []string
}

// parseFlags reads the configuration as etcd does: the command line, then
// ETCD_<FLAG> variables from environ for flags not given (env.go); or,
// when --config-file (or ETCD_CONFIG_FILE) names a file, that YAML file
// alone (configfile.go), ignoring other flags and variables.
func parseFlags(args, environ []string, stderr io.Writer) (*options, error) {
	o, fs := newFlagSet(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.version {
		return o, nil
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	file := o.configFile
	if file == "" {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, "ETCD_CONFIG_FILE="); ok {
				file = v
			}
		}
	}
	var notes []string
	var err error
	if file != "" {
		o, fs = newFlagSet(stderr) // etcd: the file alone, over the defaults
		o.configFile = file
		if notes, err = applyConfigFile(fs, file); err != nil {
			return nil, err
		}
	} else if notes, err = applyEnv(fs, environ); err != nil {
		return nil, err
	}
	if o.ignored, err = checkCompat(fs); err != nil {
		return nil, err
	}
	o.notes = notes
	return o.finish(fs)
}

// newFlagSet declares every flag; docs/flags.md is generated from it.
func newFlagSet(stderr io.Writer) (*options, *flag.FlagSet) {
	o := &options{}
	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.name, "name", "default", "human-readable name for this member")
	fs.StringVar(&o.dataDir, "data-dir", "", "path to the data directory (default \"<name>.strata\")")
	fs.StringVar(&o.listenClient, "listen-client-urls", "http://127.0.0.1:2379", "comma-separated URLs to listen on for client traffic")
	fs.StringVar(&o.advertiseClient, "advertise-client-urls", "http://127.0.0.1:2379", "comma-separated client URLs to advertise to the cluster")
	fs.StringVar(&o.listenPeer, "listen-peer-urls", "http://127.0.0.1:2380", "comma-separated URLs to listen on for peer traffic")
	fs.StringVar(&o.advertisePeer, "initial-advertise-peer-urls", "http://127.0.0.1:2380", "comma-separated peer URLs to advertise to the cluster")
	fs.StringVar(&o.initialCluster, "initial-cluster", "", "initial cluster configuration, name=peerURL,... (default \"<name>=<initial-advertise-peer-urls>\")")
	fs.StringVar(&o.clusterState, "initial-cluster-state", "new", "initial cluster state: new or existing")
	fs.StringVar(&o.token, "initial-cluster-token", "etcd-cluster", "initial cluster token, mixed into member and cluster IDs")
	fs.StringVar(&o.backend, "backend", "memory", "storage backend: "+strings.Join(backends.Names(), ", "))
	fs.Uint64Var(&o.snapshotCount, "snapshot-count", 10000, "number of committed entries between snapshots")
	o.raft.register(fs)
	fs.IntVar(&o.watchHistory, "watch-history", 1000, "number of recent events kept for watches with a past waitIndex")
	fs.Int64Var(&o.maxRequestBytes, "max-request-bytes", 3<<19, "maximum client request body size in bytes")
	fs.IntVar(&o.maxKeyBytes, "max-key-bytes", 8<<10, "maximum key length in bytes")
	fs.StringVar(&o.cors, "cors", "*", "comma-separated origins whose requests get CORS headers (\"*\": every request, etcd's default; \"\": none)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text (key=value) or json (one object per line)")
	fs.StringVar(&o.restoreFile, "restore", "", "before starting, restore this backup (stratactl snapshot save) into a new --data-dir, as a new single-member cluster")
	fs.BoolVar(&o.unsafeNoFsync, "unsafe-no-fsync", false, "skip log fsyncs (test rigs only: a power loss can lose acknowledged writes)")
	fs.DurationVar(&o.readHeaderTimeout, "read-header-timeout", 10*time.Second, "time a client has to send request headers")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 5*time.Minute, "how long an idle keep-alive connection stays open")
	fs.IntVar(&o.maxConcurrentStreams, "max-concurrent-streams", 1<<16, "HTTP/2 streams (e.g. watches) one client connection may carry")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", 1<<20, "maximum size of request headers, request line included (as every Go server, net/http allows 4 KiB of read slack beyond it)")
	fs.IntVar(&o.maxWatchers, "max-watchers", httpd.DefaultMaxWatchers, "maximum watches open at once on this member, over all connections (more get 429)")
	fs.IntVar(&o.maxKeyDepth, "max-key-depth", engine.MaxDepth, "maximum number of levels in a key")
	o.tls.register(fs)
	fs.BoolVar(&o.enablePprof, "enable-pprof", false, "serve runtime profiles under /debug/pprof/ on the client port")
	// Accepted for etcd command-line compatibility; the v2 API is always on.
	fs.Bool("enable-v2", true, "accepted for etcd compatibility (the v2 API is always enabled)")
	fs.StringVar(&o.configFile, "config-file", "", "path to an etcd YAML configuration file (etcd's keys); when given, other flags and ETCD_* variables are ignored, as etcd")
	fs.BoolVar(&o.version, "version", false, "print the version (etcd's four lines) and exit")
	fs.BoolVar(&o.forceNewCluster, "force-new-cluster", false, "restart this member as a single-member cluster with all its data, removing every other member (recovery after losing quorum for good); remove the flag once it runs")
	fs.UintVar(&o.maxSnapshots, "max-snapshots", 5, "maximum number of snapshot files kept (0 is unlimited)")
	fs.Int64Var(&o.quotaBackendBytes, "quota-backend-bytes", 0, "refuse writes other than deletes with etcd's \"database space exceeded\" once the backend's files (<data-dir>/db) exceed this many bytes; 0 is no quota")
	fs.Int64Var(&o.spaceReserve, "space-reserve-bytes", 0, "refuse writes (NOSPACE alarm) while the data dir's disk has fewer free bytes than this; 0 is 16 MiB (112 MiB for badger), negative only on an actual ENOSPC")
	fs.UintVar(&o.maxWALs, "max-wals", 5, "maximum number of WAL segment files kept (0 is unlimited); segments a kept snapshot still needs are never removed")
	fs.StringVar(&o.discovery, "discovery", "", "discovery URL used to bootstrap the cluster (etcd's v2 discovery protocol: a /v2/keys directory, which a Strata can host)")
	fs.StringVar(&o.discoverySRV, "discovery-srv", "", "DNS domain whose _etcd-server-ssl._tcp and _etcd-server._tcp SRV records list the cluster's peers, to bootstrap it")
	fs.StringVar(&o.discoverySRVName, "discovery-srv-name", "", "suffix of the DNS SRV service names queried for --discovery-srv (_etcd-server-<name>._tcp)")
	registerCompat(fs)
	return o, fs
}

func (o *options) finish(fs *flag.FlagSet) (*options, error) {
	fs.Visit(func(f *flag.Flag) { o.initialClusterSet = o.initialClusterSet || f.Name == "initial-cluster" })
	if o.dataDir == "" {
		o.dataDir = o.name + ".strata"
	}
	if o.initialCluster == "" {
		o.initialCluster = o.name + "=" + o.advertisePeer
	}
	if o.clusterState != "new" && o.clusterState != "existing" {
		return nil, fmt.Errorf("--initial-cluster-state must be new or existing, not %q", o.clusterState)
	}
	if o.maxRequestBytes <= 0 {
		return nil, errors.New("--max-request-bytes must be positive")
	}
	if err := o.raft.check(fs); err != nil {
		return nil, err
	}
	if o.maxWatchers <= 0 {
		return nil, errors.New("--max-watchers must be positive")
	}
	if o.maxKeyDepth <= 0 || o.maxKeyDepth > engine.MaxDepth {
		return nil, fmt.Errorf("--max-key-depth must be between 1 and %d", engine.MaxDepth)
	}
	if err := o.tls.check(); err != nil {
		return nil, err
	}
	return o, nil
}

// unlimitedIfZero maps etcd's "0 is unlimited" to consensus's "negative
// is unlimited".
func unlimitedIfZero(n uint) int {
	if n == 0 {
		return -1
	}
	return int(n)
}

// parseURLs checks a comma-separated URL list: http(s) scheme and host:port.
func parseURLs(flagName, s string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--%s: %q is not a valid http(s)://host:port URL", flagName, raw)
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("--%s: %q has no port", flagName, raw)
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out, nil
}

func parseInitialCluster(s string) (map[string][]string, error) {
	m := map[string][]string{}
	for _, kv := range strings.Split(s, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--initial-cluster: %q is not name=URL", kv)
		}
		urls, err := parseURLs("initial-cluster", u)
		if err != nil {
			return nil, err
		}
		m[name] = append(m[name], urls...)
	}
	return m, nil
}

// subcommands are tools that share the binary (e.g. "strata migrate");
// anything else runs the server.
var subcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cmd, args := run, os.Args[1:]
	if len(args) > 0 {
		if sub, ok := subcommands[args[0]]; ok {
			cmd, args = sub, args[1:]
		}
	}
	if err := cmd(ctx, args, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "strata: %v\n", err)
		}
		os.Exit(1)
	}
}

// run serves until ctx ends (SIGTERM/SIGINT in main), then shuts down
// cleanly. The ready line names the bound addresses, so ":0" ports work.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, os.Environ(), stderr)
	if err != nil {
		return err
	}
	if o.version {
		printVersion(stdout)
		return nil
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	logStartNotes(o, log)
	p, err := resolveMember(ctx, o, log)
	if err != nil {
		return err
	}
	// Bind before touching the data dir, so a port in use fails fast.
	lns, err := listenClients(p.clientListen)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	if err != nil {
		return err
	}
	srv, err := startServer(o, p, stdout, log)
	if err != nil {
		return err
	}
	// A cluster member serves clients once a leader is known, as etcd.
	if err := srv.WaitLeader(ctx); err != nil {
		srv.Stop()
		if errors.Is(err, server.ErrRemoved) {
			fmt.Fprintf(stderr, "strata: %v\n", err)
			return nil // not a failure: nothing to restart
		}
		return err
	}
	api, front := newFrontend(o, srv, log)
	errc, bound := serveClients(front, lns, p.clientListen, p.clientTLS)
	lns = nil // owned by hs now
	fmt.Fprintf(stdout, "strata: ready to serve client requests on %s (member %x, backend %s, data dir %s)\n",
		strings.Join(bound, ","), srv.ID(), o.backend, o.dataDir)
	if err := sdNotify("READY=1"); err != nil { // for Type=notify units
		log.Warn("systemd readiness notification failed", "err", err)
	}
	return awaitShutdown(ctx, errc, srv, api, front, stderr, log)
}

// logStartNotes logs what the options' sources changed or ignored.
func logStartNotes(o *options, log *slog.Logger) {
	if o.configFile != "" {
		log.Info("loaded server configuration; other command-line flags and environment variables are ignored", "path", o.configFile)
	}
	for _, n := range o.notes {
		log.Warn(n)
	}
	if len(o.ignored) > 0 {
		log.Warn("etcd flags accepted for compatibility and ignored", "flags", strings.Join(o.ignored, " "))
	}
}

// memberPlan is what the options resolve to before anything is bound or
// opened: the member's URLs, initial cluster and TLS settings.
type memberPlan struct {
	clientListen, clientAdv, peerListen, peerAdv []string
	initial                                      map[string][]string
	clientInfo, peerInfo                         tlsutil.Info
	clientTLS, peerServerTLS, peerClientTLS      *tls.Config
}

// resolveMember checks and resolves o's URLs, bootstrap and TLS flags, and
// starts the certificates' reloading.
func resolveMember(ctx context.Context, o *options, log *slog.Logger) (*memberPlan, error) {
	p := &memberPlan{}
	var err error
	if p.clientListen, err = parseURLs("listen-client-urls", o.listenClient); err != nil {
		return nil, err
	}
	if p.clientAdv, err = parseURLs("advertise-client-urls", o.advertiseClient); err != nil {
		return nil, err
	}
	if p.peerAdv, err = parseURLs("initial-advertise-peer-urls", o.advertisePeer); err != nil {
		return nil, err
	}
	if err := resolveBootstrap(ctx, o, log); err != nil {
		return nil, err
	}
	if p.initial, err = parseInitialCluster(o.initialCluster); err != nil {
		return nil, err
	}
	if p.clientInfo, err = resolveTLS(o.tls.client, o.dataDir, "client", p.clientListen); err != nil {
		return nil, err
	}
	if p.clientTLS, err = serverTLSFor(p.clientInfo, "listen-client-urls", "cert-file", p.clientListen); err != nil {
		return nil, err
	}
	if err := p.planPeerTLS(o); err != nil {
		return nil, err
	}
	if err := reloadCerts(p.clientInfo, "cert-file", log, p.clientTLS, nil); err != nil {
		return nil, err
	}
	if err := reloadCerts(p.peerInfo, "peer-cert-file", log, p.peerServerTLS, p.peerClientTLS); err != nil {
		return nil, err
	}
	return p, nil
}

// planPeerTLS resolves the peer listen URLs and the peer TLS, for
// serving peers and for dialing them.
func (p *memberPlan) planPeerTLS(o *options) error {
	var err error
	if p.peerListen, err = parseURLs("listen-peer-urls", o.listenPeer); err != nil {
		return err
	}
	if p.peerInfo, err = resolveTLS(o.tls.peer, o.dataDir, "peer", append(p.peerListen, p.peerAdv...)); err != nil {
		return err
	}
	if p.peerServerTLS, err = serverTLSFor(p.peerInfo, "listen-peer-urls", "peer-cert-file", p.peerListen); err != nil {
		return err
	}
	if p.peerClientTLS, err = p.peerInfo.ClientConfig(); err != nil {
		return fmt.Errorf("--peer-cert-file: %w", err)
	}
	return nil
}

// listenClients binds the client URLs; on failure the listeners already
// bound are returned with the error, for the caller to close.
func listenClients(urls []string) ([]net.Listener, error) {
	var lns []net.Listener
	for _, u := range urls {
		ln, err := net.Listen("tcp", hostPort(u))
		if err != nil {
			return lns, fmt.Errorf("listen on client URL %s: %w", u, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// startServer binds the peer URLs, restores a backup if asked, and starts
// the member (its data dir, raft and peer transport).
func startServer(o *options, p *memberPlan, stdout io.Writer, log *slog.Logger) (*server.Server, error) {
	peerLns, err := listenPeers(o, p.initial) // server.Start owns them
	if err != nil {
		return nil, err
	}
	peerLns = wrapPeerTLS(peerLns, p.peerListen, p.peerServerTLS, log)
	if p.peerInfo.Enabled() && p.peerServerTLS == nil && len(peerLns) > 0 {
		log.Warn("peer TLS flags are set but --listen-peer-urls are http://: peers are served in the clear")
	}
	if p.clientInfo.Enabled() && p.clientTLS == nil {
		log.Warn("client TLS flags are set but no --listen-client-urls is https://: clients are served in the clear")
	}
	if o.restoreFile != "" {
		if err := restoreBackup(o, p.peerAdv, stdout, log); err != nil {
			return nil, err
		}
	}
	if o.unsafeNoFsync {
		log.Warn("--unsafe-no-fsync is set: a power loss or kernel crash can lose acknowledged writes")
	}
	srv, err := server.Start(server.Config{
		Name: o.name, DataDir: o.dataDir, Backend: o.backend,
		ClientURLs: p.clientAdv, PeerURLs: p.peerAdv, InitialPeers: p.initial, ClusterToken: o.token,
		SnapshotCount: o.snapshotCount, HistorySize: o.watchHistory, UnsafeNoFsync: o.unsafeNoFsync,
		Logger: log, ClusterState: o.clusterState, PeerListeners: peerLns, PeerTLS: p.peerClientTLS,
		HeartbeatInterval: o.raft.heartbeat(), ElectionTimeout: o.raft.election(), SnapshotCatchUpEntries: o.raft.catchUpEntries,
		ForceNewCluster: o.forceNewCluster, MaxSnapshots: unlimitedIfZero(o.maxSnapshots), MaxWALSegments: int(o.maxWALs),
		SpaceReserve: o.spaceReserve, QuotaBackendBytes: o.quotaBackendBytes,
	})
	if err != nil {
		for _, ln := range peerLns {
			ln.Close()
		}
		return nil, err
	}
	return srv, nil
}

// newFrontend builds the client-facing v2 API over srv and the front that
// serves it: httpd's lean path, then net/http for the rest.
func newFrontend(o *options, srv *server.Server, log *slog.Logger) (*httpd.Server, *httpd.Front) {
	var cors []string
	if o.cors != "" {
		cors = strings.Split(o.cors, ",")
		// etcd's default, kept deliberately: browsers may read every answer; --cors limits that.
		log.Info("CORS: Access-Control-Allow-* headers on client responses", "origins", o.cors)
	} else {
		log.Info("CORS off (--cors=''): no Access-Control-Allow-* headers; OPTIONS still answered 200")
	}
	reg := newMetricsRegistry(srv)
	api := httpd.New(httpd.Config{Metrics: reg, MaxRequestBytes: o.maxRequestBytes, MaxKeyBytes: o.maxKeyBytes, CORS: cors,
		MaxWatchers: o.maxWatchers, MaxKeyDepth: o.maxKeyDepth, Logger: log}, srv, srv)
	var handler http.Handler = api
	if o.enablePprof {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("/", api)
		handler = mux
	}
	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: o.readHeaderTimeout,
		IdleTimeout:       o.idleTimeout,
		MaxHeaderBytes:    o.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		Protocols:         new(http.Protocols),
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: o.maxConcurrentStreams},
	}
	// HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on the same port: one
	// h2c connection carries thousands of watches.
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	hs.Protocols.SetHTTP2(true) // negotiated by ALPN on https listeners
	// Plain HTTP/1.1 key reads and writes take httpd's lean path; the rest
	// goes to hs.
	return api, httpd.NewFront(api, hs)
}

// serveClients serves front on every client listener (urls[i] says
// whether lns[i] is https) and returns their errors' channel and bound URLs.
func serveClients(front *httpd.Front, lns []net.Listener, urls []string, tlsCfg *tls.Config) (chan error, []string) {
	errc := make(chan error, len(lns))
	var bound []string
	for i, ln := range lns {
		if isHTTPS(urls[i]) {
			go func(ln net.Listener) { errc <- front.ServeTLS(ln, tlsCfg) }(ln)
			bound = append(bound, "https://"+ln.Addr().String())
		} else {
			go func(ln net.Listener) { errc <- front.Serve(ln) }(ln)
			bound = append(bound, "http://"+ln.Addr().String())
		}
	}
	return errc, bound
}

// awaitShutdown serves until ctx ends, a listener fails or the member is
// removed, then stops the API, the front (5 s grace) and the member.
func awaitShutdown(ctx context.Context, errc <-chan error, srv *server.Server, api *httpd.Server, front *httpd.Front, stderr io.Writer, log *slog.Logger) error {
	var serveErr error
	removed := false
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-errc:
	case <-srv.Failed():
		// The raft replica stopped on its own (a failed disk: fail-stop);
		// Stop returns why, and the process exits with it.
		log.Info("raft replica stopped: shutting down")
	case <-srv.Removed():
		// etcd: the member stops, and exits cleanly (a supervisor must not
		// restart it: the cluster refuses it from now on).
		removed = true
	}
	api.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	front.Shutdown(sctx)
	if err := srv.Stop(); err != nil && serveErr == nil {
		serveErr = err
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	if removed {
		fmt.Fprintf(stderr, "strata: %v\n", server.ErrRemoved)
		return nil
	}
	return serveErr
}
