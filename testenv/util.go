package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runCmd runs a command with ctx and returns its stdout; a failure carries the
// command line and its stderr so callers can wrap it without losing the cause.
func runCmd(ctx context.Context, stdin string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		line := strings.Join(append([]string{name}, args...), " ")
		if len(line) > 200 {
			line = line[:200] + "..."
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", line, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// ipBatch feeds many iproute2 commands to one `ip -batch` process: spawning one
// ip per command is what makes a 50-host lab slow. netns "" means the root
// namespace.
func ipBatch(ctx context.Context, netns string, force bool, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	args := []string{}
	if netns != "" {
		args = append(args, "-n", netns)
	}
	if force {
		args = append(args, "-force")
	}
	args = append(args, "-batch", "-")
	_, err := runCmd(ctx, strings.Join(lines, "\n")+"\n", "ip", args...)
	return err
}

// Proc identifies a process by PID and start time (in clock ticks since
// boot), so a recorded PID that the kernel has since reused is never signalled.
type Proc struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// procOf records pid with its current start time.
func procOf(pid int) (Proc, error) {
	st, _, err := procStat(pid)
	if err != nil {
		return Proc{}, err
	}
	return Proc{PID: pid, Start: st}, nil
}

// procStat returns the start time and the state letter of pid.
func procStat(pid int) (uint64, byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// comm may contain spaces and parentheses: the fields we want follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat start time: %w", pid, err)
	}
	return start, f[0][0], nil
}

// Alive reports whether the recorded process still runs (zombies count as
// gone: they only wait for a parent that may never reap them).
func (p Proc) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, state, err := procStat(p.PID)
	return err == nil && st == p.Start && state != 'Z' && state != 'X'
}

// Signal sends sig to the process if it is still the one recorded.
func (p Proc) Signal(sig syscall.Signal) {
	if p.Alive() {
		_ = syscall.Kill(p.PID, sig)
	}
}

// stopProcs sends sig to every live proc, waits up to grace for them to exit,
// then SIGKILLs the rest and waits up to another grace.
func stopProcs(ctx context.Context, procs []Proc, sig syscall.Signal, grace time.Duration) error {
	for _, p := range procs {
		p.Signal(sig)
	}
	if waitGone(ctx, procs, grace) {
		return nil
	}
	for _, p := range procs {
		p.Signal(syscall.SIGKILL)
	}
	if waitGone(ctx, procs, grace) {
		return nil
	}
	var left []string
	for _, p := range procs {
		if p.Alive() {
			left = append(left, strconv.Itoa(p.PID))
		}
	}
	return fmt.Errorf("processes still running after SIGKILL: %s", strings.Join(left, " "))
}

// waitGone polls until no proc is alive, the deadline passes or ctx ends.
func waitGone(ctx context.Context, procs []Proc, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		alive := false
		for _, p := range procs {
			if p.Alive() {
				alive = true
				break
			}
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nsInode returns the inode of a namespace file (/run/netns/X or /proc/P/ns/net);
// namespaces are identified by it.
func nsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// procsInNetns lists every process whose network namespace is one of inos.
// Teardown kills by this membership: a process inside a namespace the lab made
// belongs to the lab, whatever its name, and nothing outside is touched.
func procsInNetns(inos map[uint64]bool) []Proc {
	if len(inos) == 0 {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		link, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/net"))
		if err != nil {
			continue
		}
		// link looks like "net:[4026532177]".
		var ino uint64
		if _, err := fmt.Sscanf(link, "net:[%d]", &ino); err != nil || !inos[ino] {
			continue
		}
		if p, err := procOf(pid); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// writeFile writes data to path atomically (temp file + rename) creating parents.
func writeFile(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pollUntil calls f every interval until it returns true or an error, or ctx ends.
func pollUntil(ctx context.Context, interval time.Duration, f func() (bool, error)) error {
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// joinErrs is errors.Join that keeps nil when nothing failed.
func joinErrs(errs []error) error { return errors.Join(errs...) }

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func euid() int { return os.Geteuid() }

// lookPath finds a program in PATH or the sbin directories, which a non-login
// root shell may lack in PATH.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// startHostProcess starts a host's main process (in a session of its own, with
// whatever else cmd.SysProcAttr asks, output to logFile, which it closes),
// records it as h.Main, and reaps it whenever it ends (which matters only while
// this process lives).
func startHostProcess(h *HostState, cmd *exec.Cmd, logFile *os.File) error {
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	err := cmd.Start()
	logFile.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", h.Name, err)
	}
	h.Main = Proc{PID: cmd.Process.Pid}
	if p, err := procOf(cmd.Process.Pid); err == nil {
		h.Main = p
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
