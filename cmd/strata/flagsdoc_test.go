package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/flags.md from the flag set")

// flagsMarkdown renders the flag set as the docs/flags.md table.
func flagsMarkdown() string {
	_, fs := newFlagSet(io.Discard)
	var b strings.Builder
	b.WriteString("# strata flags\n\nGenerated from the flag set by `go test ./cmd/strata -run TestFlagsDoc -update-docs`; a test fails when it drifts.\n")
	b.WriteString("Every flag also works as `--flag=value` and `-flag value`.\n\n| flag | default | meaning |\n|---|---|---|\n")
	fs.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = " "
		} else {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | %s | %s |\n", f.Name, def, strings.ReplaceAll(f.Usage, "|", `\|`))
	})
	return b.String()
}

func TestFlagsDocUpToDate(t *testing.T) {
	const path = "../../docs/flags.md"
	want := flagsMarkdown()
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("docs/flags.md is out of date: run go test ./cmd/strata -run TestFlagsDoc -update-docs")
	}
}
