package procs

import "syscall"

// groupAttr puts a child in its own process group and has the kernel kill
// it when this process dies.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
