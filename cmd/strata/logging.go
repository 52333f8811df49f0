package main

import (
	"fmt"
	"io"
	"log/slog"
)

// newLogger builds the member's logger from --log-level and --log-format:
// "text" (slog's key=value lines, the default) or "json" (one JSON object
// per line with at least "time", "level" and "msg", then the record's
// attributes, e.g. {"time":"…","level":"INFO","msg":"consensus: leader
// elected","member":"…","leader":"…","term":2}).
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}
