package command

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"testing"
)

func TestMainExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name           string
		parseErr       error
		runErr         error
		code           int
		stderr, stdout string
	}{
		{"ok", nil, nil, 0, "", "ran"},
		{"help", flag.ErrHelp, nil, 0, "", ""},
		{"bad flags", errors.New("bad"), nil, 2, "", ""},
		{"run fails", nil, errors.New("boom"), 1, "tool: boom\n", "ran"},
	} {
		var stdout, stderr bytes.Buffer
		parse := func(args []string, _ io.Writer) (string, error) { return args[0], tc.parseErr }
		run := func(ctx context.Context, o string, out, _ io.Writer) error {
			if ctx.Err() != nil {
				t.Errorf("%s: context already done", tc.name)
			}
			io.WriteString(out, o)
			return tc.runErr
		}
		if code := Main("tool", []string{"ran"}, &stdout, &stderr, parse, run); code != tc.code || stderr.String() != tc.stderr || stdout.String() != tc.stdout {
			t.Errorf("%s: code %d, stdout %q, stderr %q; want %d, %q, %q", tc.name, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestParseClients(t *testing.T) {
	got, err := ParseClients(" 1, 16,,64 ")
	if err != nil || len(got) != 3 || got[0] != 1 || got[1] != 16 || got[2] != 64 {
		t.Fatalf("ParseClients = %v, %v; want [1 16 64]", got, err)
	}
	for _, bad := range []string{"", " , ", "0", "4097", "x", "1,-2"} {
		if got, err := ParseClients(bad); err == nil {
			t.Errorf("%q: %v, no error", bad, got)
		}
	}
}
