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
	b.WriteString(flagsTrailer)
	return b.String()
}

const flagsTrailer = `
## Environment and config file, as etcd

- Every flag can be set as ` + "`ETCD_<FLAG>`" + ` (upper case, dashes as underscores: ` + "`ETCD_INITIAL_CLUSTER`" + `);
  the Strata-only flags (` + "`--backend`" + `, ` + "`--watch-history`" + `, ` + "`--max-key-bytes`" + `, ` + "`--log-format`" + `, ` + "`--restore`" + `,
  ` + "`--read-header-timeout`" + `, ` + "`--idle-timeout`" + `, ` + "`--max-header-bytes`" + `, ` + "`--max-watchers`" + `, ` + "`--max-key-depth`" + `) also as
  ` + "`STRATA_<FLAG>`" + `. A flag given on the command line and in the environment is an error naming both;
  an empty variable counts as unset; an ` + "`ETCD_*`" + ` or ` + "`STRATA_*`" + ` variable that names no flag is warned about.
- ` + "`--config-file`" + ` (or ` + "`ETCD_CONFIG_FILE`" + `) reads etcd's YAML configuration file: top-level keys are the flag
  names, TLS settings sit under ` + "`client-transport-security`" + ` and ` + "`peer-transport-security`" + ` (` + "`cert-file`" + `,
  ` + "`key-file`" + `, ` + "`trusted-ca-file`" + `, ` + "`client-cert-auth`" + `, ` + "`auto-tls`" + `). When it is given, every other flag and
  ` + "`ETCD_*`" + ` variable is ignored, as etcd does. Unknown keys are warned about.
- Flags marked "accepted for etcd compatibility and ignored" change nothing; a start that sets any logs
  them once, on one line. etcd security settings Strata does not implement (CRL files, allowed CN/hostname,
  cipher suites, host whitelist) are refused unless left at their defaults, rather than silently ignored.
- ` + "`--proxy`" + `: etcd's v2 proxy mode is out of scope; only ` + "`off`" + ` is accepted.
`

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
