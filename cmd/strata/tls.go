package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/strata-kv/strata/internal/tlsutil"
)

// tlsFlags are etcd's client and peer TLS flags.
type tlsFlags struct {
	client, peer tlsutil.Info
}

func (f *tlsFlags) register(fs *flag.FlagSet) {
	for _, side := range []struct {
		prefix, who, certUse string
		info                 *tlsutil.Info
	}{
		{"", "client", "path to the TLS certificate (PEM) served on https client URLs", &f.client},
		{"peer-", "peer", "path to the TLS certificate (PEM) served on https peer URLs and presented when dialling peers (needs serverAuth and clientAuth usages)", &f.peer},
	} {
		p, i := side.prefix, side.info
		fs.StringVar(&i.CertFile, p+"cert-file", "", side.certUse)
		fs.StringVar(&i.KeyFile, p+"key-file", "", "path to the key (PEM) of --"+p+"cert-file")
		fs.StringVar(&i.TrustedCAFile, p+"trusted-ca-file", "", "path to the CA certificates (PEM) "+side.who+" certificates must be signed by; given, "+side.who+"s must present one (as etcd 3.4, even without --"+p+"client-cert-auth)")
		fs.BoolVar(&i.ClientCertAuth, p+"client-cert-auth", false, "require "+side.who+"s to present a certificate signed by --"+p+"trusted-ca-file")
		fs.BoolVar(&i.AutoTLS, p+"auto-tls", false, side.who+" TLS with a generated self-signed certificate (unless --"+p+"cert-file is given): encrypts, does not authenticate")
	}
}

func (f *tlsFlags) check() error {
	if err := f.client.Check(""); err != nil {
		return err
	}
	return f.peer.Check("peer-")
}

// resolveTLS returns info with the auto-tls certificate generated (in
// <data-dir>/fixtures/<side>, for the hosts of urls) when --auto-tls is set
// without certificate files; info unchanged otherwise.
func resolveTLS(info tlsutil.Info, dataDir, side string, urls []string) (tlsutil.Info, error) {
	if !info.AutoTLS || info.CertFile != "" {
		return info, nil
	}
	var hosts []string
	for _, u := range urls {
		if pu, err := url.Parse(u); err == nil {
			hosts = append(hosts, pu.Hostname())
		}
	}
	cert, key, err := tlsutil.SelfSigned(filepath.Join(dataDir, "fixtures", side), hosts)
	if err != nil {
		return info, fmt.Errorf("--%sauto-tls: %w", map[string]string{"client": "", "peer": "peer-"}[side], err)
	}
	info.CertFile, info.KeyFile = cert, key
	info.Generated = true
	return info, nil
}

// serverTLSFor returns the TLS configuration for the https URLs among
// urls, or nil if there are none. flagName names the URL flag in errors.
func serverTLSFor(info tlsutil.Info, flagName, certFlag string, urls []string) (*tls.Config, error) {
	https := false
	for _, u := range urls {
		https = https || isHTTPS(u)
	}
	if !https {
		return nil, nil
	}
	if !info.Enabled() {
		return nil, fmt.Errorf("--%s has an https URL but no TLS certificate: give --%s and --%s (or --%s)",
			flagName, certFlag, certKeyFlag(certFlag), autoFlag(certFlag))
	}
	cfg, err := info.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", certFlag, err)
	}
	return cfg, nil
}

// reloadCerts makes the configurations built from info (server and/or
// dialling; nil ones are skipped) use info's certificate and key as the
// files hold them at each new connection, so a rotated certificate needs
// no restart, as etcd.
func reloadCerts(info tlsutil.Info, certFlag string, log *slog.Logger, server, dial *tls.Config) error {
	if server == nil && dial == nil || info.CertFile == "" {
		return nil
	}
	kp, err := tlsutil.NewKeyPairFiles(info.CertFile, info.KeyFile, log)
	if err != nil {
		return fmt.Errorf("--%s: %w", certFlag, err)
	}
	if server != nil {
		kp.ReloadServer(server)
	}
	if dial != nil {
		kp.ReloadClient(dial)
	}
	return nil
}

func certKeyFlag(certFlag string) string {
	return certFlag[:len(certFlag)-len("cert-file")] + "key-file"
}

func autoFlag(certFlag string) string {
	return certFlag[:len(certFlag)-len("cert-file")] + "auto-tls"
}

func isHTTPS(u string) bool {
	pu, err := url.Parse(u)
	return err == nil && pu.Scheme == "https"
}

// hostPort strips the scheme from a URL parseURLs returned.
func hostPort(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	return pu.Host
}

// wrapPeerTLS serves TLS on the peer listeners bound for https URLs (in
// the order of urls), refusing plain HTTP with a 400 and a log line.
func wrapPeerTLS(lns []net.Listener, urls []string, cfg *tls.Config, log *slog.Logger) []net.Listener {
	out := make([]net.Listener, len(lns))
	for i, ln := range lns {
		out[i] = ln
		if i < len(urls) && isHTTPS(urls[i]) && cfg != nil {
			out[i] = tlsutil.NewListener(ln, cfg, log, true, 5*time.Second)
		}
	}
	return out
}
