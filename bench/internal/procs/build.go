package procs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ModuleRoot returns the nearest directory at or above the working
// directory holding go.mod, or "." if there is none.
func ModuleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "."
		}
		dir = parent
	}
}

// StrataBinary returns prebuilt if it is set; otherwise it builds
// ./cmd/strata of the module at repo into dir/strata (dir is created if
// missing). The build gets five minutes and is killed, with everything it
// spawned, when ctx is done.
func StrataBinary(ctx context.Context, prebuilt, repo, dir string) (string, error) {
	if prebuilt != "" {
		return prebuilt, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build strata: %w", err)
	}
	bin := filepath.Join(dir, "strata")
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "go", "build", "-o", bin, "./cmd/strata")
	cmd.Dir = repo
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 1500 {
			msg = msg[:1500] + "…"
		}
		return "", fmt.Errorf("go build ./cmd/strata in %s: %w\n%s", repo, err, msg)
	}
	return bin, nil
}
