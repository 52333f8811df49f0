package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: --version and "strata version" print etcd's four lines,
// line for line in the shape of the installed etcd's when there is one.
func TestVersion(t *testing.T) {
	bin := strataBinary(t)
	want := []*regexp.Regexp{
		regexp.MustCompile(`^etcd Version: 3\.4\.23$`),
		regexp.MustCompile(`^Git SHA: strata \S+ \((not provided|[0-9a-f]{12}(\+dirty)?)\)$`),
		regexp.MustCompile(`^Go Version: ` + regexp.QuoteMeta(runtime.Version()) + `$`),
		regexp.MustCompile(`^Go OS/Arch: ` + runtime.GOOS + `/` + runtime.GOARCH + `$`),
	}
	var etcdLines []string
	if path, err := exec.LookPath("etcd"); err == nil {
		out, err := exec.Command(path, "--version").Output()
		if err != nil {
			t.Fatalf("etcd --version: %v", err)
		}
		etcdLines = strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	}
	for _, args := range [][]string{{"--version"}, {"version"}, {"--version", "--name", "x"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("strata %v: %v", args, err)
		}
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(lines) != 4 {
			t.Fatalf("strata %v printed %d lines: %q", args, len(lines), out)
		}
		for i, re := range want {
			if !re.MatchString(lines[i]) {
				t.Errorf("strata %v line %d = %q, want %v", args, i+1, lines[i], re)
			}
			if etcdLines != nil {
				e, _, _ := strings.Cut(etcdLines[i], ": ")
				s, _, _ := strings.Cut(lines[i], ": ")
				if e != s {
					t.Errorf("line %d label %q, etcd's is %q", i+1, s, e)
				}
			}
		}
	}
}

// TestEnvFlags: ETCD_<FLAG> (and STRATA_<FLAG> for Strata-only flags)
// set flags not on the command line; both set is an error naming both;
// unknown variables are warned about.
func TestEnvFlags(t *testing.T) {
	o, err := parseFlags([]string{"--data-dir", "d"}, []string{
		"ETCD_NAME=infra9", "ETCD_INITIAL_CLUSTER_TOKEN=tok", "ETCD_SNAPSHOT_COUNT=77",
		"ETCD_HEARTBEAT_INTERVAL=50", "ETCD_ELECTION_TIMEOUT=500", "ETCD_ENABLE_PPROF=true",
		"STRATA_BACKEND=bbolt", "ETCD_WATCH_HISTORY=12", "ETCD_DATA_DIR=", "PATH=/bin",
		"ETCD_FOO=1", "STRATA_BAR=2", "ETCDCTL_API=2", "ETCD_QUOTA_BACKEND_BYTES=8589934592",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{o.name, o.token, o.snapshotCount, o.raft.heartbeatMs, o.raft.electionMs, o.enablePprof, o.backend, o.watchHistory, o.dataDir, o.initialCluster}
	want := []any{"infra9", "tok", uint64(77), uint(50), uint(500), true, "bbolt", 12, "d", "infra9=http://127.0.0.1:2380"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("from env: %v, want %v", got, want)
	}
	wantNotes := []string{"unrecognized environment variable ETCD_FOO=1", "unrecognized environment variable STRATA_BAR=2"}
	if !reflect.DeepEqual(o.notes, wantNotes) {
		t.Errorf("notes %q, want %q", o.notes, wantNotes)
	}
	if o.quotaBackendBytes != 8589934592 || len(o.ignored) != 0 {
		t.Errorf("quota %d, ignored %q: want the quota applied, nothing ignored", o.quotaBackendBytes, o.ignored)
	}

	for _, tc := range []struct {
		args, env []string
		want      string
	}{
		{[]string{"--name", "a"}, []string{"ETCD_NAME=b"},
			`conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag --name (either unset environment variable or disable flag)`},
		{[]string{"--backend", "memory"}, []string{"STRATA_BACKEND=bbolt"},
			`conflicting environment variable "STRATA_BACKEND" is shadowed by corresponding command-line flag --backend`},
		{nil, []string{"ETCD_BACKEND=memory", "STRATA_BACKEND=bbolt"},
			`environment variables ETCD_BACKEND="memory" and STRATA_BACKEND="bbolt" set the same flag --backend differently`},
		{nil, []string{"ETCD_SNAPSHOT_COUNT=many"}, `invalid value "many" for ETCD_SNAPSHOT_COUNT`},
		{nil, []string{"ETCD_PROXY=on"}, "--proxy=on: etcd's proxy mode is out of scope"},
		{nil, []string{"ETCD_CIPHER_SUITES=TLS_RSA_WITH_AES_128_CBC_SHA"}, "--cipher-suites=TLS_RSA_WITH_AES_128_CBC_SHA: Strata does not implement"},
	} {
		_, err := parseFlags(tc.args, tc.env, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %v env %v: got %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
}

// TestEnvShadowedMatchesEtcd: etcd itself refuses a flag given both ways,
// with the message Strata's is built on.
func TestEnvShadowedMatchesEtcd(t *testing.T) {
	path, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("no etcd installed")
	}
	cmd := exec.Command(path, "--name", "a", "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "ETCD_NAME=b")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)`) {
		t.Fatalf("etcd: %v %s", err, out)
	}
	cmd = exec.Command(strataBinary(t), "--name", "a", "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "ETCD_NAME=b")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag --name`) {
		t.Fatalf("strata: %v %s", err, out)
	}
}

const etcdYAML = `# an etcd 3.4 configuration file
name: 'infra1'
data-dir: %DIR%
snapshot-count: 2000
heartbeat-interval: 50
election-timeout: 500
listen-peer-urls: http://127.0.0.1:12380
listen-client-urls: http://127.0.0.1:0
max-snapshots: 3
max-wals: 4
cors:
initial-advertise-peer-urls: http://127.0.0.1:12380
advertise-client-urls: http://127.0.0.1:12379
initial-cluster: infra1=http://127.0.0.1:12380
initial-cluster-token: 'etcd-cluster-1'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: true
enable-pprof: true
proxy: 'off'
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: true
  trusted-ca-file: /etc/ssl/peer-ca.pem
  auto-tls: true
debug: false
logger: zap
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
backend: bbolt
`

// TestConfigFileEqualsFlags: an etcd YAML config file gives the options
// the same settings as flags give; with it, flags and env are ignored.
func TestConfigFileEqualsFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "etcd.conf.yml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(etcdYAML, "%DIR%", filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	viaFlags, err := parseFlags([]string{
		"--name", "infra1", "--data-dir", filepath.Join(dir, "data"), "--snapshot-count", "2000",
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--listen-peer-urls", "http://127.0.0.1:12380", "--listen-client-urls", "http://127.0.0.1:0",
		"--max-snapshots", "3", "--max-wals", "4",
		"--initial-advertise-peer-urls", "http://127.0.0.1:12380", "--advertise-client-urls", "http://127.0.0.1:12379",
		"--initial-cluster", "infra1=http://127.0.0.1:12380", "--initial-cluster-token", "etcd-cluster-1",
		"--initial-cluster-state", "new", "--strict-reconfig-check=false", "--enable-v2=true", "--enable-pprof",
		"--proxy", "off", "--client-cert-auth=false", "--auto-tls=false",
		"--peer-client-cert-auth", "--peer-trusted-ca-file", "/etc/ssl/peer-ca.pem", "--peer-auto-tls",
		"--debug=false", "--logger", "zap", "--log-outputs", "stderr", "--force-new-cluster=false",
		"--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1", "--backend", "bbolt",
	}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args, env []string
	}{
		{"--config-file", []string{"--config-file", file, "--name", "ignored", "--snapshot-count", "1"}, []string{"ETCD_DATA_DIR=/ignored", "ETCD_FOO=x"}},
		{"ETCD_CONFIG_FILE", nil, []string{"ETCD_CONFIG_FILE=" + file, "ETCD_NAME=ignored"}},
	} {
		viaFile, err := parseFlags(tc.args, tc.env, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if viaFile.configFile != file || len(viaFile.notes) != 0 {
			t.Errorf("%s: configFile %q notes %q", tc.name, viaFile.configFile, viaFile.notes)
		}
		viaFile.configFile = ""
		if !reflect.DeepEqual(viaFile, viaFlags) {
			t.Errorf("%s: config file gives\n%+v\nflags give\n%+v", tc.name, *viaFile, *viaFlags)
		}
	}

	for _, tc := range []struct{ yaml, want string }{
		{"name: a\nno-such-key: 1\n", `unknown key "no-such-key" ignored`},
		{"client-transport-security:\n  nope: 1\n", `unknown key "nope" in client-transport-security ignored`},
	} {
		f := filepath.Join(dir, "warn.yml")
		os.WriteFile(f, []byte(tc.yaml), 0o600)
		o, err := parseFlags([]string{"--config-file", f}, nil, io.Discard)
		if err != nil || len(o.notes) != 1 || !strings.Contains(o.notes[0], tc.want) {
			t.Errorf("%q: %v notes %q, want %q", tc.yaml, err, o.notes, tc.want)
		}
	}
	for _, tc := range []struct{ yaml, want string }{
		{"snapshot-count: lots\n", `key "snapshot-count": invalid value "lots"`},
		{"name: [a\n", "etcd.conf"},
		{"- a\n", "not a YAML mapping"},
		{"peer-transport-security:\n  allowed-cn: etcd-peer\n", "--peer-cert-allowed-cn=etcd-peer: Strata does not implement"},
		{"client-transport-security:\n  allowed-cn: etcd-client\n", "allowed-cn: Strata does not implement"},
		{"proxy: on\n", "--proxy=true: etcd's proxy mode is out of scope"},
	} {
		f := filepath.Join(dir, "etcd.conf.bad.yml")
		os.WriteFile(f, []byte(tc.yaml), 0o600)
		if _, err := parseFlags([]string{"--config-file", f}, nil, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestConfigFileServes: a member started from only an etcd config file
// (through ETCD_CONFIG_FILE) serves, under the name the file gives.
func TestConfigFileServes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "etcd.conf.yml")
	os.WriteFile(file, []byte("name: cfgmember\ndata-dir: "+filepath.Join(dir, "data")+"\nlisten-client-urls: http://127.0.0.1:0\nlog-level: info\nbackend-batch-limit: 5\n"), 0o600)
	t.Setenv("ETCD_CONFIG_FILE", file)
	var log syncBuffer
	base, _ := startLogged(t, &log)
	resp, err := http.Get(base + "/v2/members")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"name":"cfgmember"`) {
		t.Errorf("/v2/members = %s", body)
	}
	for _, want := range []string{"loaded server configuration", "etcd flags accepted for compatibility and ignored", "--backend-batch-limit=5"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("data dir from the file: %v", err)
	}
}
