// Package tlsutil builds the TLS configurations a member serves and dials
// with from etcd's flags (--cert-file, --key-file, --trusted-ca-file,
// --client-cert-auth, --auto-tls and their --peer- twins), performs
// server handshakes with a deadline, and turns handshake failures into
// one log line that says what the operator has to fix.
//
// Every configuration it returns requires TLS 1.2 or newer.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MinVersion is the oldest protocol version served or dialled.
const MinVersion = tls.VersionTLS12

// Info is one side's (client or peer) TLS settings, as etcd's flags give
// them. The zero value means plain HTTP.
type Info struct {
	// CertFile and KeyFile hold the member's certificate chain and key
	// (PEM). For peers the certificate is also the client certificate the
	// member presents when it dials, so it needs both the serverAuth and
	// clientAuth extended key usages (or none).
	CertFile, KeyFile string
	// TrustedCAFile holds the CA certificates (PEM) client certificates
	// must chain to, and, when dialling peers, that peers' server
	// certificates must chain to.
	TrustedCAFile string
	// ClientCertAuth requires every connecting client to present a
	// certificate signed by TrustedCAFile's CAs. A TrustedCAFile alone
	// requires it too, as etcd 3.4 (its TLSInfo.ServerConfig): an operator
	// who gives the CA expects it enforced.
	ClientCertAuth bool
	// AutoTLS uses a generated self-signed certificate when CertFile and
	// KeyFile are not given. Peers' certificates are then not verified
	// (as etcd's --peer-auto-tls): it encrypts, it does not authenticate.
	AutoTLS bool
	// Generated marks CertFile and KeyFile as AutoTLS's self-signed pair:
	// ClientConfig then does not verify peers (each has its own).
	Generated bool
}

// Enabled reports whether the settings ask for TLS at all.
func (i Info) Enabled() bool {
	return i.CertFile != "" || i.KeyFile != "" || i.AutoTLS
}

// Check validates the combination of settings; flagPrefix ("" or
// "peer-") names the flags in the error.
func (i Info) Check(flagPrefix string) error {
	switch {
	case (i.CertFile == "") != (i.KeyFile == ""):
		return fmt.Errorf("--%scert-file and --%skey-file must be given together", flagPrefix, flagPrefix)
	case i.ClientCertAuth && i.TrustedCAFile == "":
		return fmt.Errorf("--%sclient-cert-auth needs --%strusted-ca-file: the CA client certificates must be signed by", flagPrefix, flagPrefix)
	case i.ClientCertAuth && !i.Enabled():
		return fmt.Errorf("--%sclient-cert-auth needs TLS: give --%scert-file and --%skey-file (or --%sauto-tls)", flagPrefix, flagPrefix, flagPrefix, flagPrefix)
	}
	return nil
}

// SelfSigned makes sure dir holds a self-signed certificate (cert.pem)
// and key (key.pem) for hosts (IP addresses or DNS names), valid for one
// year, and returns their paths. Files already there and still valid for
// at least a day are reused, so a restarted member keeps its certificate.
// The certificate carries both serverAuth and clientAuth usages.
func SelfSigned(dir string, hosts []string) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && c.Leaf != nil &&
		time.Until(c.Leaf.NotAfter) > 24*time.Hour {
		return certFile, keyFile, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("auto-tls: create %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("auto-tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return "", "", fmt.Errorf("auto-tls: serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"strata"}, CommonName: "strata auto-tls"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("auto-tls: create certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("auto-tls: encode key: %w", err)
	}
	if err := writePEM(keyFile, "EC PRIVATE KEY", kder, 0o600); err != nil {
		return "", "", err
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("auto-tls: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("auto-tls: rename %s: %w", tmp, err)
	}
	return nil
}

// ServerConfig returns the configuration to serve with. With
// ClientCertAuth or a TrustedCAFile (as etcd 3.4), a client must present
// a certificate that chains to TrustedCAFile and carries the clientAuth
// usage (or none); anything else fails the handshake.
func (i Info) ServerConfig() (*tls.Config, error) {
	cert, err := i.keyPair()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: MinVersion, Certificates: []tls.Certificate{cert}}
	if i.TrustedCAFile != "" {
		pool, err := loadPool(i.TrustedCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
	}
	if i.ClientCertAuth || i.TrustedCAFile != "" {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig returns the configuration to dial peers with: the
// member's certificate as its client certificate (presented whatever CAs
// the server asks for), peers verified against
// TrustedCAFile (the system roots without it). With AutoTLS and no
// TrustedCAFile, peers are not verified, as etcd's --peer-auto-tls.
func (i Info) ClientConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: MinVersion}
	if i.Enabled() {
		cert, err := i.keyPair()
		if err != nil {
			return nil, err
		}
		// Always presented, even when the server names other CAs as
		// acceptable (Go would then send none), as etcd does: the server
		// can then log which certificate it refused and why.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	switch {
	case i.TrustedCAFile != "":
		pool, err := loadPool(i.TrustedCAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	case i.AutoTLS && (i.CertFile == "" || i.Generated):
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

func (i Info) keyPair() (tls.Certificate, error) {
	if i.CertFile == "" {
		return tls.Certificate{}, errors.New("no certificate: give the cert and key files, or auto-tls")
	}
	cert, err := tls.LoadX509KeyPair(i.CertFile, i.KeyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load key pair %s, %s: %w", i.CertFile, i.KeyFile, err)
	}
	return cert, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read trusted CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("trusted CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ErrPlainHTTP is returned by Handshake when the client spoke plain HTTP
// to a TLS port; it was answered with a 400 and the connection closed.
var ErrPlainHTTP = errors.New("client sent a plain HTTP request to an HTTPS port")

// Handshake runs the server side of a TLS handshake on c within timeout
// (none if 0) and returns the TLS connection, its deadlines cleared. A
// client that speaks plain HTTP gets net/http's answer ("400 Bad Request:
// Client sent an HTTP request to an HTTPS server.") and ErrPlainHTTP. On
// any failure c is closed.
func Handshake(c net.Conn, cfg *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	if timeout > 0 {
		c.SetDeadline(time.Now().Add(timeout))
	}
	tc := tls.Server(c, cfg)
	if err := tc.Handshake(); err != nil {
		var rhe tls.RecordHeaderError
		if errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader[:]) {
			const resp = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
			rhe.Conn.Write([]byte(resp))
			rhe.Conn.Close()
			return nil, ErrPlainHTTP
		}
		c.Close()
		return nil, err
	}
	if timeout > 0 {
		c.SetDeadline(time.Time{})
	}
	return tc, nil
}

func looksLikeHTTP(hdr []byte) bool {
	switch string(hdr) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE", "TRACE":
		return true
	}
	return false
}

// Describe explains a failed server handshake in one line for the log,
// naming what to fix when the client's certificate was refused; ok is
// false for failures that say nothing about configuration (the client
// went away, timed out, or is not TLS at all but not HTTP either), which
// callers may log at a lower level.
func Describe(err error, peerSide bool) (msg string, ok bool) {
	who := "client"
	flag := "--trusted-ca-file"
	if peerSide {
		who, flag = "peer", "--peer-trusted-ca-file"
	}
	var cie x509.CertificateInvalidError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	switch {
	case errors.Is(err, ErrPlainHTTP):
		return fmt.Sprintf("%s sent plain HTTP to a TLS port: refused (use an https:// URL)", who), true
	case errors.As(err, &cie) && cie.Reason == x509.IncompatibleUsage:
		return fmt.Sprintf("%s certificate [%s] lacks the clientAuth extended key usage, so crypto/tls refuses it for client authentication (clients see alert bad certificate): reissue it with extendedKeyUsage = clientAuth", who, certName(cie.Cert)), true
	case errors.As(err, &cie) && cie.Reason == x509.Expired:
		return fmt.Sprintf("%s certificate [%s] is expired or not yet valid: %v", who, certName(cie.Cert), err), true
	case errors.As(err, &uae):
		return fmt.Sprintf("%s certificate [%s] is not signed by a CA in %s: refused", who, certName(uae.Cert), flag), true
	case errors.As(err, &hne):
		return fmt.Sprintf("%s certificate: %v", who, err), true
	case strings.Contains(err.Error(), "client didn't provide a certificate"):
		return fmt.Sprintf("%s presented no certificate, and client certificate authentication requires one: refused", who), true
	case strings.Contains(err.Error(), "unsupported versions"), strings.Contains(err.Error(), "protocol version"):
		return fmt.Sprintf("%s offered only TLS versions older than 1.2: refused (%v)", who, err), true
	}
	return fmt.Sprintf("%s TLS handshake failed: %v", who, err), false
}

func certName(c *x509.Certificate) string {
	if c == nil {
		return "?"
	}
	return c.Subject.String()
}
