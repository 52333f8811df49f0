package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/strata-kv/strata/backends"
)

// subcommandFlags is the flag set of a tool that shares the binary: its
// usage text first, then its flags.
func subcommandFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// checkBackend refuses a backend name the binary does not have.
func checkBackend(cmd, name string) error {
	if !slices.Contains(backends.Names(), name) {
		return fmt.Errorf("%s: unknown backend %q (have %v)", cmd, name, backends.Names())
	}
	return nil
}

// subcommandLogger logs text lines to stderr at the --log-level given.
func subcommandLogger(cmd, level string, stderr io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%s: --log-level: %w", cmd, err)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l})), nil
}
