//go:build !linux

package procs

import "syscall"

// groupAttr puts a child in its own process group; without Linux's
// Pdeathsig, a child outlives a benchmark that crashes.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
