package main

import (
	"os"
	"strings"
	"testing"
)

// The global help differs from etcdctl's in exactly these ways: the
// program's name and version, no `backup` (it copies an etcd data
// directory; `strata migrate` is Strata's), and the added `endpoint`,
// `snapshot` and `bench`.
// testdata/help.txt is stratactl's.

func wantHelp(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/help.txt")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGlobalUsage checks the help, and the usage error for a bad global
// flag: help on stdout, the error on stderr, exit 1.
func TestGlobalUsage(t *testing.T) {
	ctl, _ := binaries(t)
	help := wantHelp(t)
	cases := []struct {
		args []string
		want result
	}{
		{nil, result{stdout: help}},
		{a("--help"), result{stdout: help}},
		{a("--bogus", "get", "/k"), result{stdout: "Incorrect Usage. flag provided but not defined: -bogus\n\n" + help, stderr: "flag provided but not defined: -bogus\n", code: 1}},
		{a("--timeout", "abc", "get", "/k"), result{stdout: "Incorrect Usage. invalid value \"abc\" for flag -timeout: parse error\n\n" + help, stderr: "invalid value \"abc\" for flag -timeout: parse error\n", code: 1}},
	}
	for _, tc := range cases {
		if got := runCtl(t, ctl, tc.args, nil, ""); got != tc.want {
			t.Errorf("stratactl %q:\n got %+v\nwant %+v", tc.args, got, tc.want)
		}
	}
}

// TestGlobalUsageVsEtcdctl derives stratactl's help from etcdctl's by the
// documented differences, and checks the usage errors are otherwise equal.
func TestGlobalUsageVsEtcdctl(t *testing.T) {
	needEtcd(t)
	ctl, _ := binaries(t)
	for _, args := range [][]string{nil, a("--bogus", "get", "/k"), a("-o")} {
		ref := runCtl(t, etcdctlBin, args, nil, "")
		var lines []string
		for _, l := range strings.SplitAfter(ref.stdout, "\n") {
			switch {
			case l == "   3.4.23\n": // VERSION:
				l = "   (devel)\n"
			case strings.HasPrefix(l, "   backup "):
				continue
			case strings.HasPrefix(l, "   help, h "):
				lines = append(lines, "   endpoint        endpoint status subcommand\n",
					"   snapshot        snapshot save and status subcommands\n",
					"   bench           load test: a put/get/watch mix, throughput and latency\n")
			}
			lines = append(lines, strings.ReplaceAll(l, "etcdctl", "stratactl"))
		}
		want := ref
		want.stdout = strings.Join(lines, "")
		if got := runCtl(t, ctl, args, nil, ""); got != want {
			t.Errorf("stratactl %q:\n got %+v\nwant %+v", args, got, want)
		}
	}
}
