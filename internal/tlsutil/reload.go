package tlsutil

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// KeyPairFiles serves a certificate and key read from files, re-read when
// either file changes, so that a certificate rotated on disk is used from
// the next handshake on without a restart (etcd re-reads its files for
// each new connection). A change is seen through the files' size,
// modification time and inode; checking costs two stat calls per
// handshake. If the new files do not load (half written, a key that does
// not match), the last good pair goes on being served, the failure is
// logged once per change, and the next handshake tries again.
type KeyPairFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu     sync.Mutex
	cur    *tls.Certificate
	stamp  [2]fileStamp // of the files cur was read from
	failed [2]fileStamp // of the files that last failed to load
}

type fileStamp struct {
	size, ino int64
	mtime     time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if ino, ok := inode(fi); ok {
		st.ino = ino
	}
	return st, nil
}

// NewKeyPairFiles loads the pair once; an error then is the caller's to
// report (the member does not start with a pair it cannot load).
func NewKeyPairFiles(certFile, keyFile string, log *slog.Logger) (*KeyPairFiles, error) {
	if log == nil {
		log = slog.Default()
	}
	k := &KeyPairFiles{certFile: certFile, keyFile: keyFile, log: log}
	st, err := k.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load key pair %s, %s: %w", certFile, keyFile, err)
	}
	k.cur, k.stamp = &cert, st
	return k, nil
}

func (k *KeyPairFiles) stamps() ([2]fileStamp, error) {
	c, err := stampOf(k.certFile)
	if err != nil {
		return [2]fileStamp{}, err
	}
	kk, err := stampOf(k.keyFile)
	if err != nil {
		return [2]fileStamp{}, err
	}
	return [2]fileStamp{c, kk}, nil
}

// Current returns the pair as the files hold it now (or the last good one).
func (k *KeyPairFiles) Current() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, err := k.stamps()
	if err != nil || st == k.stamp {
		if err != nil && st != k.failed {
			k.failed = st
			k.log.Warn("tls: cannot stat the certificate files: serving the previous certificate", "cert", k.certFile, "key", k.keyFile, "err", err)
		}
		return k.cur
	}
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		if st != k.failed {
			k.failed = st
			k.log.Warn("tls: the certificate files changed but do not load: serving the previous certificate", "cert", k.certFile, "key", k.keyFile, "err", err)
		}
		return k.cur
	}
	k.cur, k.stamp = &cert, st
	subject := ""
	if cert.Leaf != nil {
		subject = cert.Leaf.Subject.String() + ", valid until " + cert.Leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	k.log.Info("tls: certificate reloaded", "cert", k.certFile, "certificate", subject)
	return k.cur
}

// ReloadServer makes cfg (from ServerConfig) serve the pair as the files
// hold it at each handshake.
func (k *KeyPairFiles) ReloadServer(cfg *tls.Config) {
	cfg.Certificates = nil
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return k.Current(), nil }
}

// ReloadClient makes cfg (from ClientConfig) present the pair as the
// files hold it at each handshake it dials.
func (k *KeyPairFiles) ReloadClient(cfg *tls.Config) {
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return k.Current(), nil }
}
