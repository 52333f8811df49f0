// Package command runs a benchmark tool's main: parse the flags, run
// under a context that SIGINT and SIGTERM cancel, and map the outcome to
// an exit code.
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Main parses args with parse, then calls run, and returns the exit code:
// 0 on success and for -h, 2 when parse fails (parse reports why on
// stderr), 1 when run fails (its error goes to stderr as "name: error").
func Main[O any](name string, args []string, stdout, stderr io.Writer,
	parse func([]string, io.Writer) (O, error),
	run func(context.Context, O, io.Writer, io.Writer) error) int {
	opts, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// ParseClients parses a comma-separated list of client counts, each
// 1..4096 ("1,16,64"); empty items are skipped, and at least one count
// must remain.
func ParseClients(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("bad client count %q (want 1..4096)", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no client counts in %q", s)
	}
	return out, nil
}
