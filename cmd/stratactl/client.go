package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli"
	client "go.etcd.io/etcd/client/v2"
)

// defaultDialTimeout bounds connection set-up, as in etcdctl.
const defaultDialTimeout = 30 * time.Second

// errNoAvailSrc is argOrStdin's error when neither an argument nor stdin
// gave a value.
var errNoAvailSrc = errors.New("no available argument and stdin")

// argOrStdin returns args[i], or else all of stdin if it is not empty.
func argOrStdin(args []string, in io.Reader, i int) (string, error) {
	if i < len(args) {
		return args[i], nil
	}
	b, err := io.ReadAll(in)
	if string(b) == "" || err != nil {
		return "", errNoAvailSrc
	}
	return string(b), nil
}

// handleError prints err as etcdctl does and returns the exit error for
// code. With --output json, an etcd error given as *client.Error is printed
// as JSON; the keys API returns client.Error values, so in practice (as in
// etcdctl) errors are always printed as text.
func handleError(c *cli.Context, code int, err error) error {
	if c.GlobalString("output") == "json" {
		if cerr, ok := err.(*client.Error); ok {
			b, merr := json.Marshal(cerr)
			if merr != nil {
				panic(merr)
			}
			fmt.Fprintln(stderr, string(b))
			return exit(code)
		}
	}
	fmt.Fprintln(stderr, "Error: ", err)
	var clusterErr *client.ClusterError
	if errors.As(err, &clusterErr) {
		fmt.Fprintln(stderr, clusterErr.Detail())
	}
	return exit(code)
}

// failf prints a message on stderr and returns exit code 1, the way
// etcdctl's member, user, role and auth commands fail.
func failf(format string, a ...any) error {
	fmt.Fprintf(stderr, format, a...)
	return exit(exitBadArgs)
}

// endpointsFlag is the endpoint list from the flags and environment, in
// etcdctl's order of precedence.
func endpointsFlag(c *cli.Context) []string {
	s := c.GlobalString("endpoints")
	for _, next := range []func() string{
		func() string { return os.Getenv("ETCDCTL_ENDPOINTS") },
		func() string { return c.GlobalString("endpoint") },
		func() string { return os.Getenv("ETCDCTL_ENDPOINT") },
		func() string { return c.GlobalString("peers") },
		func() string { return os.Getenv("ETCDCTL_PEERS") },
	} {
		if s != "" {
			break
		}
		s = next()
	}
	if s == "" {
		s = "http://127.0.0.1:2379,http://127.0.0.1:4001"
	}
	return strings.Split(s, ",")
}

// endpointsGiven reports whether any endpoint flag, environment variable
// or SRV discovery domain is set, i.e. the default list is not used.
func endpointsGiven(c *cli.Context) bool {
	for _, s := range []string{
		c.GlobalString("endpoints"), os.Getenv("ETCDCTL_ENDPOINTS"),
		c.GlobalString("endpoint"), os.Getenv("ETCDCTL_ENDPOINT"),
		c.GlobalString("peers"), os.Getenv("ETCDCTL_PEERS"),
	} {
		if s != "" {
			return true
		}
	}
	domain, _, _ := discoveryDomain(c)
	return domain != ""
}

// discoveryDomain is the DNS SRV discovery configuration.
func discoveryDomain(c *cli.Context) (domain string, insecure bool, serviceName string) {
	domain = c.GlobalString("discovery-srv")
	if domain == "" {
		domain = os.Getenv("ETCDCTL_DISCOVERY_SRV")
	}
	insecure = c.GlobalBool("insecure-discovery") || os.Getenv("ETCDCTL_INSECURE_DISCOVERY") != ""
	serviceName = c.GlobalString("discovery-srv-name")
	if serviceName == "" {
		serviceName = os.Getenv("ETCDCTL_DISCOVERY_SRV_NAME")
	}
	return domain, insecure, serviceName
}

func discoveredEndpoints(c *cli.Context) ([]string, error) {
	domain, insecure, serviceName := discoveryDomain(c)
	if domain == "" {
		return nil, nil
	}
	eps, err := client.NewSRVDiscover().Discover(domain, serviceName)
	if err != nil {
		return nil, err
	}
	if insecure {
		return eps, nil
	}
	var secure []string
	for _, ep := range eps {
		if strings.HasPrefix(ep, "http://") {
			fmt.Fprintf(stderr, "ignoring discovered insecure endpoint %q\n", ep)
			continue
		}
		secure = append(secure, ep)
	}
	return secure, nil
}

// endpoints is the list of endpoints to start from: discovered by DNS SRV
// records if --discovery-srv is set, else from the flags. An endpoint
// without a scheme gets http.
func endpoints(c *cli.Context) ([]string, error) {
	eps, err := discoveredEndpoints(c)
	if err != nil {
		return nil, err
	}
	if len(eps) == 0 {
		eps = endpointsFlag(c)
	}
	for i, ep := range eps {
		u, err := url.Parse(ep)
		if err != nil {
			return nil, err
		}
		if u.Scheme == "" {
			u.Scheme = "http"
		}
		eps[i] = u.String()
	}
	return eps, nil
}

// newTransport is the HTTP transport with the TLS flags applied, built as
// etcd's pkg/transport.NewTransport builds it (and failing with its
// messages).
func newTransport(c *cli.Context) (*http.Transport, error) {
	cafile := c.GlobalString("ca-file")
	certfile := c.GlobalString("cert-file")
	keyfile := c.GlobalString("key-file")
	if cafile == "" {
		cafile = os.Getenv("ETCDCTL_CA_FILE")
	}
	if certfile == "" {
		certfile = os.Getenv("ETCDCTL_CERT_FILE")
	}
	if keyfile == "" {
		keyfile = os.Getenv("ETCDCTL_KEY_FILE")
	}
	serverName, insecure, _ := discoveryDomain(c)
	if insecure {
		serverName = ""
	}
	cfg, err := tlsConfig(certfile, keyfile, cafile, serverName)
	if err != nil {
		return nil, err
	}
	dialTimeout := defaultDialTimeout
	if total := c.GlobalDuration("total-timeout"); total != 0 && total < dialTimeout {
		dialTimeout = total
	}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig:     cfg,
	}, nil
}

// tlsConfig loads the client certificate (both files or neither) and the
// trusted CAs. The error texts are etcd's: they are what etcdctl prints.
func tlsConfig(certfile, keyfile, cafile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if certfile != "" || keyfile != "" {
		if certfile == "" || keyfile == "" {
			return nil, fmt.Errorf("KeyFile and CertFile must both be present[key: %v, cert: %v]", keyfile, certfile)
		}
		certPEM, err := os.ReadFile(certfile)
		if err != nil {
			return nil, err
		}
		keyPEM, err := os.ReadFile(keyfile)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if cafile != "" {
		pool, err := certPool(cafile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// certPool reads every PEM certificate in file; like etcd it stops at the
// first block that is not PEM.
func certPool(file string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		pool.AddCert(cert)
	}
	return pool, nil
}

// newClient builds the v2 client from the global flags.
func newClient(c *cli.Context) (client.Client, error) {
	eps, err := endpoints(c)
	if err != nil {
		return nil, err
	}
	tr, err := newTransport(c)
	if err != nil {
		return nil, err
	}
	cfg := client.Config{
		Transport:               tr,
		Endpoints:               eps,
		HeaderTimeoutPerRequest: c.GlobalDuration("timeout"),
	}
	uFlag := c.GlobalString("username")
	if uFlag == "" {
		uFlag = os.Getenv("ETCDCTL_USERNAME")
	}
	if uFlag != "" {
		username, password, err := usernamePassword("Password: ", uFlag)
		if err != nil {
			return nil, err
		}
		cfg.Username = username
		cfg.Password = password
	}
	return client.New(cfg)
}

// mustNewClient builds the client and, unless --no-sync, replaces the
// endpoints by the client URLs the cluster publishes. Its error is an
// exitError, already reported.
func mustNewClient(c *cli.Context) (client.Client, error) {
	hc, err := newClient(c)
	if err != nil {
		fmt.Fprintln(stderr, err.Error())
		return nil, exit(exitBadArgs)
	}
	debug := c.GlobalBool("debug")
	if debug {
		client.EnablecURLDebug()
	}
	if !c.GlobalBool("no-sync") {
		if debug {
			fmt.Fprintf(stderr, "start to sync cluster using endpoints(%s)\n", strings.Join(hc.Endpoints(), ","))
		}
		ctx, cancel := contextWithTotalTimeout(c)
		err := hc.Sync(ctx)
		cancel()
		if err != nil {
			if errors.Is(err, client.ErrNoEndpoints) {
				fmt.Fprintf(stderr, "etcd cluster has no published client endpoints.\n")
				fmt.Fprintf(stderr, "Try '--no-sync' if you want to access non-published client endpoints(%s).\n", strings.Join(hc.Endpoints(), ","))
				return nil, handleError(c, exitServerError, err)
			}
			if isConnectionError(err) {
				return nil, handleError(c, exitBadConnection, err)
			}
		}
		if debug {
			fmt.Fprintf(stderr, "got endpoints(%s) after sync\n", strings.Join(hc.Endpoints(), ","))
		}
	}
	if debug {
		fmt.Fprintf(stderr, "Cluster-Endpoints: %s\n", strings.Join(hc.Endpoints(), ", "))
	}
	return hc, nil
}

// mustNewClientNoSync builds the client without syncing (cluster-health).
func mustNewClientNoSync(c *cli.Context) (client.Client, error) {
	hc, err := newClient(c)
	if err != nil {
		fmt.Fprintln(stderr, err.Error())
		return nil, exit(exitBadArgs)
	}
	if c.GlobalBool("debug") {
		fmt.Fprintf(stderr, "Cluster-Endpoints: %s\n", strings.Join(hc.Endpoints(), ", "))
		client.EnablecURLDebug()
	}
	return hc, nil
}

func mustNewKeysAPI(c *cli.Context) (client.KeysAPI, error) {
	hc, err := mustNewClient(c)
	if err != nil {
		return nil, err
	}
	return client.NewKeysAPI(hc), nil
}

// isConnectionError reports whether err means no endpoint could be reached.
func isConnectionError(err error) bool {
	switch t := err.(type) {
	case *client.ClusterError:
		for _, cerr := range t.Errors {
			if !isConnectionError(cerr) {
				return false
			}
		}
		return true
	case *net.OpError:
		if t.Op == "dial" || t.Op == "read" {
			return true
		}
		return isConnectionError(t.Err)
	case syscall.Errno:
		if t == syscall.ECONNREFUSED {
			return true
		}
	case net.Error:
		if t.Timeout() {
			return true
		}
	}
	return false
}

func contextWithTotalTimeout(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.GlobalDuration("total-timeout"))
}

// usernamePassword splits "user:pass", or prompts for the password when
// flag has no colon.
func usernamePassword(prompt, flag string) (username, password string, err error) {
	user, pass, ok := strings.Cut(flag, ":")
	if ok {
		return user, pass, nil
	}
	password, err = askPassword(prompt)
	if err != nil {
		return "", "", err
	}
	return flag, password, nil
}

// askPassword prompts on stdout and reads a line from stdin with the
// terminal's echo off. It behaves as the speakeasy package etcdctl uses:
// echo is switched with stty(1) on the process's own standard streams (so a
// stdin that is not a terminal makes stty complain on stderr, as etcdctl's
// does), and end of input gives the text read so far.
func askPassword(prompt string) (string, error) {
	if prompt != "" {
		fmt.Fprint(stdout, prompt)
	}
	if err := stty("-echo"); err != nil {
		return "", err
	}
	password, err := readLine(stdin)
	if serr := stty("echo"); serr != nil && err == nil {
		err = serr
	}
	fmt.Fprintln(stdout, "")
	return password, err
}

func stty(arg string) error {
	path, err := exec.LookPath("stty")
	if err != nil {
		return fmt.Errorf("stty binary not found:\n\t%w", err)
	}
	cmd := exec.Command(path, arg)
	cmd.Args[0] = "stty" // as speakeasy runs it: stty's messages start "stty:"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed turning console echo %s for password entry:\n\t%w", arg, err)
	}
	_ = cmd.Wait() // stty's own failure (stdin is no terminal) is reported by stty on stderr
	return nil
}

// readLine reads one byte at a time up to a newline or the end of input, so
// that nothing after the line is consumed.
func readLine(r io.Reader) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("read password: %w", err)
		}
		if n == 0 || b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	return strings.TrimSuffix(string(line), "\r"), nil
}
