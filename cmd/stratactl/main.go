// Command stratactl is a command line client for the etcd v2 API, served by
// Strata and by etcd. It has etcdctl v2's commands, flags, output and exit
// codes, so a script written for `ETCDCTL_API=2 etcdctl` runs unchanged with
// the binary renamed; `stratactl endpoint status` is added.
//
// Like etcdctl v2 it is built on urfave/cli v1 and etcd's official v2 client
// (go.etcd.io/etcd/client/v2), which is what makes flag parsing, usage errors
// and error messages come out as etcdctl's do.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/urfave/cli"
)

// Exit codes, as etcdctl v2 defines them.
const (
	exitSuccess = iota
	exitBadArgs
	exitBadConnection
	exitBadAuth
	exitServerError
	exitClusterNotHealthy
)

// progName is the name the program uses for itself in help and hints.
const progName = "stratactl"

// version is stratactl's version; release builds set it with
// -ldflags "-X main.version=...", otherwise it is the module version.
var version = ""

// The process's standard streams. Commands write through these so that
// formatting can be tested in-process.
var (
	stdin  io.Reader = os.Stdin
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// exitError ends the command with the given exit code; its message (if any)
// has already been printed. It deliberately does not implement
// cli.ExitCoder, which would make urfave/cli exit on its own.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func exit(code int) error { return &exitError{code: code} }

func main() {
	os.Exit(run(os.Args))
}

// run runs stratactl with the given arguments (args[0] is the program name)
// and returns the exit code.
func run(args []string) int {
	err := newApp().Run(args)
	var ee *exitError
	switch {
	case err == nil:
		return exitSuccess
	case errors.As(err, &ee):
		return ee.code
	default:
		// Usage errors (bad flags) were already explained on stdout by
		// urfave/cli; etcdctl repeats the error on stderr and exits 1.
		fmt.Fprintln(stderr, err)
		return exitBadArgs
	}
}

func appVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func newApp() *cli.App {
	app := cli.NewApp()
	app.Name = progName
	app.Version = appVersion()
	app.Usage = "A simple command line client for etcd."
	app.Writer = stdout
	app.ErrWriter = stderr
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "stratactl version: %v\n", c.App.Version)
		fmt.Fprintln(c.App.Writer, "API version: 2")
	}
	app.Flags = []cli.Flag{
		cli.BoolFlag{Name: "debug", Usage: "output cURL commands which can be used to reproduce the request"},
		cli.BoolFlag{Name: "no-sync", Usage: "don't synchronize cluster information before sending request"},
		cli.StringFlag{Name: "output, o", Value: "simple", Usage: "output response in the given format (`simple`, `extended` or `json`)"},
		cli.StringFlag{Name: "discovery-srv, D", Usage: "domain name to query for SRV records describing cluster endpoints"},
		cli.BoolFlag{Name: "insecure-discovery", Usage: "accept insecure SRV records describing cluster endpoints"},
		cli.StringFlag{Name: "peers, C", Value: "", Usage: "DEPRECATED - \"--endpoints\" should be used instead"},
		cli.StringFlag{Name: "endpoint", Value: "", Usage: "DEPRECATED - \"--endpoints\" should be used instead"},
		cli.StringFlag{Name: "endpoints", Value: "", Usage: "a comma-delimited list of machine addresses in the cluster (default: \"http://127.0.0.1:2379,http://127.0.0.1:4001\")"},
		cli.StringFlag{Name: "cert-file", Value: "", Usage: "identify HTTPS client using this SSL certificate file"},
		cli.StringFlag{Name: "key-file", Value: "", Usage: "identify HTTPS client using this SSL key file"},
		cli.StringFlag{Name: "ca-file", Value: "", Usage: "verify certificates of HTTPS-enabled servers using this CA bundle"},
		cli.StringFlag{Name: "username, u", Value: "", Usage: "provide username[:password] and prompt if password is not supplied."},
		cli.DurationFlag{Name: "timeout", Value: 2 * time.Second, Usage: "connection timeout per request"},
		cli.DurationFlag{Name: "total-timeout", Value: 5 * time.Second, Usage: "timeout for the command execution (except watch)"},
	}
	app.Commands = []cli.Command{
		newClusterHealthCommand(),
		newMkCommand(),
		newMkdirCommand(),
		newRmCommand(),
		newRmdirCommand(),
		newGetCommand(),
		newLsCommand(),
		newSetCommand(),
		newSetDirCommand(),
		newUpdateCommand(),
		newUpdateDirCommand(),
		newWatchCommand(),
		newExecWatchCommand(),
		newMemberCommand(),
		newUserCommands(),
		newRoleCommands(),
		newAuthCommands(),
		newEndpointCommand(),
		newSnapshotCommand(),
		newBenchCommand(),
	}
	return app
}
