// Package procgroup runs a local helper process (dynalite, the Lambda Runtime
// Interface Emulator) in its own process group, so that stopping it also
// stops whatever it started, and so that it dies with the Go process that
// started it.
package procgroup

import (
	"os/exec"
	"syscall"
	"time"
)

// Prepare makes cmd start in its own process group and receive sig if the
// starting process dies first.
func Prepare(cmd *exec.Cmd, sig syscall.Signal) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
}

// Stop sends SIGTERM to cmd's process group, waits up to grace for done (the
// result of cmd.Wait) and then kills the group.
func Stop(cmd *exec.Cmd, done <-chan error, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}
