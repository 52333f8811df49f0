package badger

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// logger returns the logger for this package's own messages: slog's
// default at the time of the call, so the server's slog.SetDefault applies.
func logger() *slog.Logger { return slog.Default().With("component", "badger") }

// slogLogger adapts badger.Logger to slog. Badger is chatty at INFO (every
// compaction, every flush): only its warnings and errors are passed on.
type slogLogger struct{ l *slog.Logger }

func newLogger() slogLogger { return slogLogger{logger()} }

func (s slogLogger) log(level slog.Level, format string, args []any) {
	if !s.l.Enabled(context.Background(), level) {
		return
	}
	s.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (s slogLogger) Errorf(f string, a ...any)   { s.log(slog.LevelError, f, a) }
func (s slogLogger) Warningf(f string, a ...any) { s.log(slog.LevelWarn, f, a) }
func (slogLogger) Infof(string, ...any)          {}
func (slogLogger) Debugf(string, ...any)         {}
