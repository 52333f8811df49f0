package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli"

	"github.com/strata-kv/strata/backends"
)

// What etcdctl v2 lacks: `stratactl snapshot save FILE` (a backup of a live
// member over the API) and `stratactl snapshot status FILE` (check one).
// A backup is the stream of GET /v2/strata/snapshot: the store in the
// backends' portable snapshot format (its raft index in the header, a
// CRC-32C trailer), and it restores with `strata --restore FILE`.

// Trailers of GET /v2/strata/snapshot (httpd.SnapshotSHA256Trailer and
// httpd.SnapshotIndexTrailer; not imported, to keep the server out of
// stratactl).
const (
	snapshotSHA256Trailer = "X-Strata-Snapshot-Sha256"
	snapshotIndexTrailer  = "X-Strata-Snapshot-Index"
)

func newSnapshotCommand() cli.Command {
	return cli.Command{
		Name:  "snapshot",
		Usage: "snapshot save and status subcommands",
		Subcommands: []cli.Command{
			{
				Name:      "save",
				Usage:     "save a backup of the whole store, from a live member, to a file",
				ArgsUsage: "<filename>",
				Description: `Streams GET /v2/strata/snapshot from the first endpoint in --endpoints
   that answers (the cluster is not synced) into <filename>.part, checks it
   as it arrives (format, key order, CRC-32C) and against the SHA-256 and
   raft index the server sends after it, then renames it to <filename>. A
   backup that fails a check is deleted and the command exits 4 (2 if no
   endpoint could be reached). Writes go on while it runs: the backup is the
   store at one raft index, which it prints. With auth enabled, only root
   may take one. Restore it with: strata --restore <filename> --data-dir NEW`,
				Action: snapshotSave,
			},
			{
				Name:        "status",
				Usage:       "check a backup file and print its raft index, records and hash",
				ArgsUsage:   "<filename>",
				Description: `Reads <filename> as strata --restore would, and exits 4 if it is truncated or corrupted.`,
				Action:      snapshotStatus,
			},
		},
	}
}

// backupInfo is what checking a backup stream found.
type backupInfo struct {
	index   uint64
	records int
	bytes   int64
	sha256  string
}

// checkBackup reads a whole backup stream, checking its format and
// checksum, and hashes its bytes.
func checkBackup(r io.Reader) (backupInfo, error) {
	var info backupInfo
	h := sha256.New()
	cr := &countReader{r: io.TeeReader(r, h)}
	index, err := backends.ReadSnapshot(cr, func(k, v []byte) error {
		info.records++
		return nil
	})
	if err != nil {
		return info, err
	}
	// Nothing may follow the trailer.
	if n, _ := io.Copy(io.Discard, cr); n > 0 {
		return info, fmt.Errorf("%w: %d bytes after the end of the snapshot", backends.ErrCorruptSnapshot, n)
	}
	info.index, info.bytes, info.sha256 = index, cr.n, hex.EncodeToString(h.Sum(nil))
	return info, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func snapshotSave(c *cli.Context) error {
	if len(c.Args()) != 1 {
		return failf("snapshot save: exactly one argument, the file to write, is required\n")
	}
	path := c.Args()[0]
	eps, err := endpoints(c)
	if err != nil {
		fmt.Fprintln(stderr, err.Error())
		return exit(exitBadArgs)
	}
	tr, err := newTransport(c)
	if err != nil {
		fmt.Fprintln(stderr, err.Error())
		return exit(exitBadArgs)
	}
	tr.ResponseHeaderTimeout = c.GlobalDuration("timeout")
	user := c.GlobalString("username")
	if user == "" {
		user = os.Getenv("ETCDCTL_USERNAME")
	}
	var name, password string
	if user != "" {
		if name, password, err = usernamePassword("Password: ", user); err != nil {
			fmt.Fprintln(stderr, err.Error())
			return exit(exitBadArgs)
		}
	}
	hc := &http.Client{Transport: tr}
	var errs []string
	for _, ep := range eps {
		info, err := saveFrom(hc, ep, name, password, user != "", path)
		var serr *serverError
		switch {
		case err == nil:
			fmt.Fprintf(stdout, "Snapshot saved at %s: raft index %d, %d records, %d bytes, sha256 %s (from %s)\n",
				path, info.index, info.records, info.bytes, info.sha256, ep)
			return nil
		case errors.As(err, &serr):
			// The member answered and the backup failed: do not try another.
			fmt.Fprintf(stderr, "Error: snapshot from %s: %v\n", ep, err)
			return exit(exitServerError)
		}
		errs = append(errs, fmt.Sprintf("%s: %v", ep, err))
	}
	fmt.Fprintf(stderr, "Error: no endpoint could be reached: %s\n", strings.Join(errs, "; "))
	return exit(exitBadConnection)
}

// serverError is a backup that reached a member and failed.
type serverError struct{ err error }

func (e *serverError) Error() string { return e.err.Error() }
func (e *serverError) Unwrap() error { return e.err }

// saveFrom streams one endpoint's backup into path; a connection failure
// before any answer is returned as is, anything later as a *serverError.
func saveFrom(hc *http.Client, ep, user, password string, auth bool, path string) (backupInfo, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, strings.TrimSuffix(ep, "/")+"/v2/strata/snapshot", nil)
	if err != nil {
		return backupInfo{}, err
	}
	if auth {
		req.SetBasicAuth(user, password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return backupInfo{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return backupInfo{}, &serverError{fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	info, err := writeBackup(path, resp)
	if err != nil {
		return info, &serverError{err}
	}
	return info, nil
}

// writeBackup writes resp's body to path via path.part, checking it and
// its trailers; on any failure the partial file is removed.
func writeBackup(path string, resp *http.Response) (info backupInfo, err error) {
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return info, fmt.Errorf("create backup file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	info, err = checkBackup(io.TeeReader(resp.Body, f))
	if err != nil {
		return info, fmt.Errorf("backup stream: %w", err)
	}
	// Trailers are only set once the body was read to its end.
	sum, idx := resp.Trailer.Get(snapshotSHA256Trailer), resp.Trailer.Get(snapshotIndexTrailer)
	if sum == "" || idx == "" {
		return info, errors.New("backup stream ended without its checksum trailer: incomplete")
	}
	if sum != info.sha256 {
		return info, fmt.Errorf("backup checksum mismatch: the server sent sha256 %s, the file has %s", sum, info.sha256)
	}
	if idx != strconv.FormatUint(info.index, 10) {
		return info, fmt.Errorf("backup index mismatch: the server says %s, the file holds %d", idx, info.index)
	}
	if err := f.Sync(); err != nil {
		return info, fmt.Errorf("sync backup file: %w", err)
	}
	if err := f.Close(); err != nil {
		return info, fmt.Errorf("close backup file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return info, fmt.Errorf("rename backup file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return info, nil
}

func snapshotStatus(c *cli.Context) error {
	if len(c.Args()) != 1 {
		return failf("snapshot status: exactly one argument, the backup file, is required\n")
	}
	f, err := os.Open(c.Args()[0])
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exit(exitBadArgs)
	}
	defer f.Close()
	info, err := checkBackup(f)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %s: %v\n", c.Args()[0], err)
		return exit(exitServerError)
	}
	fmt.Fprintf(stdout, "%s: raft index %d, %d records, %d bytes, sha256 %s\n", c.Args()[0], info.index, info.records, info.bytes, info.sha256)
	return nil
}
