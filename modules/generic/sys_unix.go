//go:build unix

package generic

import (
	"io/fs"
	"os/exec"
	"syscall"
)

// fileOwner returns the uid and gid that own fi's path.
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

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
