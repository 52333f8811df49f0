package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/strata-kv/strata/membership"
)

// strataVersion is Strata's own release; set with
// -ldflags "-X main.strataVersion=…" by a release build.
var strataVersion = "0.1.0-dev"

// apiVersion is the etcd release whose v2 API Strata serves, the one
// GET /version reports as etcdserver.
const apiVersion = membership.EtcdVersion

func init() {
	subcommands["version"] = func(_ context.Context, _ []string, stdout, _ io.Writer) error {
		printVersion(stdout)
		return nil
	}
}

// printVersion writes etcd's four --version lines. The first keeps
// etcd's "etcd Version: X.Y.Z" so tools that parse it see the API level
// served; Strata's own version and commit go on the Git SHA line.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "etcd Version: %s\n", apiVersion)
	fmt.Fprintf(w, "Git SHA: strata %s (%s)\n", strataVersion, vcsRevision())
	fmt.Fprintf(w, "Go Version: %s\n", runtime.Version())
	fmt.Fprintf(w, "Go OS/Arch: %s/%s\n", runtime.GOOS, runtime.GOARCH)
}

// vcsRevision is the commit the binary was built from (first 12 hex
// digits, "+dirty" for a modified tree), or "not provided".
func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "not provided"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "not provided"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}
