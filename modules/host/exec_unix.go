//go:build unix

package host

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup puts the command in its own process group and makes cancellation kill
// the whole group: a shell's children would otherwise outlive it and keep its output
// pipes open.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
