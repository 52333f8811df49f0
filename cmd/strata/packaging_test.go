package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// unit is the [Service] section of a systemd unit file, in order.
type unit struct {
	env     []string // Environment= assignments, in order
	envFile []string // EnvironmentFile= paths ("-" prefix kept)
	typ     string
	exec    string
}

// parseUnit reads a unit's [Service] section, expanding the %H (host
// name), %p (unit prefix) and %% specifiers as systemd does.
func parseUnit(t *testing.T, path, prefix string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	spec := strings.NewReplacer("%%", "%", "%H", host, "%p", prefix)
	var u unit
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			section = line
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		if section != "[Service]" {
			continue
		}
		v = spec.Replace(v)
		switch k {
		case "Environment":
			u.env = append(u.env, splitQuoted(t, v)...)
		case "EnvironmentFile":
			u.envFile = append(u.envFile, v)
		case "Type":
			u.typ = v
		case "ExecStart":
			u.exec = v
		}
	}
	return u
}

// splitQuoted splits an Environment= value into assignments: words
// separated by spaces, each optionally in double or single quotes.
func splitQuoted(t *testing.T, s string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == '"' && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", s)
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// parseEnvFile reads a file with systemd's EnvironmentFile= rules: one
// KEY=VALUE a line, lines starting with # or ; and blank lines ignored,
// a trailing backslash joining the next line, whitespace around the key
// and before the value dropped, a value in double quotes (backslash
// escapes) or single quotes taken literally, trailing whitespace of an
// unquoted value dropped.
func parseEnvFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimLeft(lines[i], " \t")
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + lines[i]
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not KEY=VALUE", path, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimLeft(v, " \t")
		switch {
		case len(v) >= 2 && v[0] == '"' && strings.HasSuffix(strings.TrimRight(v, " \t"), `"`):
			v = strings.TrimRight(v, " \t")
			var sb strings.Builder
			for j := 1; j < len(v)-1; j++ {
				if v[j] == '\\' && j+1 < len(v)-1 {
					j++
				}
				sb.WriteByte(v[j])
			}
			v = sb.String()
		case len(v) >= 2 && v[0] == '\'' && strings.HasSuffix(strings.TrimRight(v, " \t"), `'`):
			v = strings.TrimRight(v, " \t")
			v = v[1 : len(v)-1]
		default:
			v = strings.TrimRight(v, " \t")
		}
		out = append(out, k+"="+v)
	}
	return out
}

// expandExec splits ExecStart= as systemd does for this unit's use:
// words on spaces, "$VAR" replaced by the variable's value split on
// whitespace, "${VAR}" by its value as one word.
func expandExec(cmdline string, env []string) []string {
	vals := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vals[k] = v
	}
	var args []string
	for _, w := range strings.Fields(cmdline) {
		switch {
		case strings.HasPrefix(w, "${") && strings.HasSuffix(w, "}"):
			args = append(args, vals[w[2:len(w)-1]])
		case strings.HasPrefix(w, "$"):
			args = append(args, strings.Fields(vals[w[1:]])...)
		default:
			args = append(args, w)
		}
	}
	return args
}

// TestSystemdUnitLikeDebians: packaging/strata.service sets the
// environment the way Debian's etcd.service does.
func TestSystemdUnitLikeDebians(t *testing.T) {
	const debian = "/lib/systemd/system/etcd.service"
	if _, err := os.Stat(debian); err != nil {
		t.Skip("no Debian etcd.service installed")
	}
	ours, theirs := parseUnit(t, "../../packaging/strata.service", "strata"), parseUnit(t, debian, "etcd")
	keys := func(env []string) []string {
		var ks []string
		for _, kv := range env {
			k, _, _ := strings.Cut(kv, "=")
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	if !reflect.DeepEqual(keys(ours.env), keys(theirs.env)) || ours.typ != theirs.typ ||
		ours.envFile[0] != "-/etc/default/strata" || theirs.envFile[0] != "-/etc/default/etcd" ||
		strings.Fields(ours.exec)[1] != strings.Fields(theirs.exec)[1] {
		t.Fatalf("strata.service %+v\ndiffers in shape from etcd.service %+v", ours, theirs)
	}
}

// TestSystemdUnitServes starts strata exactly as packaging/strata.service
// would: systemd's clean environment, the unit's Environment= lines, then
// the environment file (packaging/strata.default with a test's settings
// appended, read with EnvironmentFile= rules), ExecStart= with $DAEMON_ARGS
// expanded, and NOTIFY_SOCKET for Type=notify. It must notify READY=1 and
// serve, named after the host (ETCD_NAME=%H).
func TestSystemdUnitServes(t *testing.T) {
	u := parseUnit(t, "../../packaging/strata.service", "strata")
	if u.typ != "notify" || len(u.envFile) != 1 || u.envFile[0] != "-/etc/default/strata" {
		t.Fatalf("unit: %+v", u)
	}
	dir := t.TempDir()
	def, err := os.ReadFile("../../packaging/strata.default")
	if err != nil {
		t.Fatal(err)
	}
	port := freePorts(t, 1)[0]
	client := fmt.Sprintf("http://127.0.0.1:%d", port)
	envFile := filepath.Join(dir, "strata")
	extra := fmt.Sprintf(`
ETCD_DATA_DIR=%s
  ETCD_LISTEN_CLIENT_URLS = %s
ETCD_ADVERTISE_CLIENT_URLS='%s'
ETCD_INITIAL_CLUSTER_TOKEN="tok \"quoted\""
; a comment
STRATA_BACKEND=bb\
olt
DAEMON_ARGS="--log-format json  --log-level info"
`, filepath.Join(dir, "data"), client, client)
	if err := os.WriteFile(envFile, append(def, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	env = append(env, u.env...)
	fileEnv := parseEnvFile(t, envFile)
	wantTail := []string{"ETCD_DATA_DIR=" + filepath.Join(dir, "data"), "ETCD_LISTEN_CLIENT_URLS=" + client, "ETCD_ADVERTISE_CLIENT_URLS=" + client,
		`ETCD_INITIAL_CLUSTER_TOKEN=tok "quoted"`, "STRATA_BACKEND=bbolt", "DAEMON_ARGS=--log-format json  --log-level info"}
	if !reflect.DeepEqual(fileEnv, wantTail) { // packaging/strata.default itself sets nothing
		t.Fatalf("environment file gives %q, want %q", fileEnv, wantTail)
	}
	env = append(env, fileEnv...)
	sock := filepath.Join(dir, "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env = append(env, "NOTIFY_SOCKET="+sock)

	args := expandExec(u.exec, env)
	if args[0] != "/usr/bin/strata" || !reflect.DeepEqual(args[1:], []string{"--log-format", "json", "--log-level", "info"}) {
		t.Fatalf("ExecStart expands to %q", args)
	}
	cmd := exec.Command(strataBinary(t), args[1:]...)
	cmd.Env = env
	var m testMember
	var stdout syncBuffer
	cmd.Stderr, cmd.Stdout = memberLog{&m}, &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("strata stderr:\n%s", tail(m.stderr(), 30))
		}
	})

	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		n, _, err := ln.ReadFromUnix(buf)
		if err == nil {
			got <- string(buf[:n])
		}
	}()
	select {
	case msg := <-got:
		if msg != "READY=1" {
			t.Fatalf("notification %q, want READY=1", msg)
		}
	case err := <-exited:
		t.Fatalf("strata exited before notifying: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no READY=1 within 30s")
	}
	c := &http.Client{Timeout: 5 * time.Second}
	if code, _, err := doReq(c, "PUT", client+"/v2/keys/unit", "ok"); err != nil || code != 201 {
		t.Fatalf("PUT: %d %v", code, err)
	}
	host, _ := os.Hostname()
	code, b, err := doReq(c, "GET", client+"/v2/members", "")
	if err != nil || code != 200 || !strings.Contains(string(b), `"name":"`+host+`"`) {
		t.Fatalf("/v2/members: %d %s %v (want name %q from ETCD_NAME=%%H)", code, b, err, host)
	}
	if want := "backend bbolt, data dir " + filepath.Join(dir, "data"); !strings.Contains(stdout.String(), want) {
		t.Fatalf("ready line %q lacks %q", stdout.String(), want)
	}
	// DAEMON_ARGS took effect (JSON log lines), and so did STRATA_BACKEND.
	sc := bufio.NewScanner(strings.NewReader(m.stderr()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON (DAEMON_ARGS --log-format json): %q", sc.Text())
		}
	}
	if code, b, _ := doReq(c, "GET", client+"/v2/stats/self", ""); code != 200 || !strings.Contains(string(b), `"name":"`+host+`"`) {
		t.Fatalf("/v2/stats/self: %d %s", code, b)
	}
}
