package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Sample is what `runbench measure` reports about one command: it runs the command as a
// child subreaper, so processes that leave the command's tree (OpenSSH ControlPersist
// masters daemonize) are re-parented to it, still sampled, and finally reaped, so their CPU
// is in RUSAGE_CHILDREN too.
type Sample struct {
	Wall      time.Duration `json:"wall_ns"`
	CPU       time.Duration `json:"cpu_ns"`        // user+sys of the command and every descendant, orphans included
	CPUDirect time.Duration `json:"cpu_direct_ns"` // user+sys from the command's own rusage (its waited-for descendants only)
	CPUProc   time.Duration `json:"cpu_proc_ns"`   // cross-check: own user+sys per process, last value seen in /proc (a lower bound)
	PeakRSS   int64         `json:"peak_rss"`      // bytes: the largest sum of RSS over the tree in one 50 ms sample
	MaxRSS    int64         `json:"max_rss"`       // bytes: rusage ru_maxrss (the largest single process)
	Orphans   int           `json:"orphans"`       // processes reaped after the command ended
	Exit      int           `json:"exit"`
	Procs     int           `json:"procs"` // distinct processes seen in the tree
}

var (
	pageSize = int64(os.Getpagesize())
	clkTck   = int64(100) // USER_HZ on Linux
)

type procStat struct {
	pid, ppid int
	start     uint64
	cpuTicks  int64
	rss       int64 // bytes
}

// readStat parses /proc/PID/stat.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field N is f[N-3].
	if len(f) < 22 {
		return procStat{}, false
	}
	st := procStat{pid: pid}
	st.ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpuTicks = ut + stt
	st.start, _ = strconv.ParseUint(f[19], 10, 64)
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	st.rss = rss * pageSize
	return st, true
}

// tree returns every live descendant of root (root excluded).
func tree(root int) []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	all := make([]procStat, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			all = append(all, st)
		}
	}
	kids := map[int][]int{}
	byPid := map[int]procStat{}
	for _, st := range all {
		kids[st.ppid] = append(kids[st.ppid], st.pid)
		byPid[st.pid] = st
	}
	var out []procStat
	stack := append([]int(nil), kids[root]...)
	for n := 0; len(stack) > 0 && n < 1_000_000; n++ {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		out = append(out, byPid[p])
		stack = append(stack, kids[p]...)
	}
	return out
}

// measureMain is `runbench measure [-o FILE] -- CMD ARGS...`: run CMD, print a Sample as JSON.
func measureMain(args []string) int {
	out := ""
	if len(args) >= 2 && args[0] == "-o" {
		out, args = args[1], args[2:]
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: runbench measure [-o FILE] -- CMD ARGS...")
		return 2
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
		return 2
	}
	self := os.Getpid()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr

	type key struct {
		pid   int
		start uint64
	}
	seen := map[key]int64{}
	var peak int64
	sample := func() {
		var sum int64
		for _, st := range tree(self) {
			sum += st.rss
			seen[key{st.pid, st.start}] = st.cpuTicks
		}
		if sum > peak {
			peak = sum
		}
	}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	sample()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			sample()
		}
	}
	tick.Stop()
	var s Sample
	s.Wall = time.Since(start)
	s.Exit = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.CPUDirect = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// Whatever is left was orphaned by the command and re-parented here (ControlPersist
	// masters): sample it once more, end it, and reap it, so its CPU is counted.
	sample()
	left := tree(self)
	for _, st := range left {
		if st.ppid == self {
			_ = unix.Kill(st.pid, unix.SIGTERM)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.ECHILD {
			break
		}
		if pid > 0 {
			s.Orphans++
			continue
		}
		if time.Now().Add(5 * time.Second).After(deadline) {
			for _, st := range tree(self) {
				_ = unix.Kill(st.pid, unix.SIGKILL)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &ru)
	s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	s.MaxRSS = ru.Maxrss * 1024
	var ticks int64
	for _, t := range seen {
		ticks += t
	}
	s.CPUProc = time.Duration(ticks * int64(time.Second) / clkTck)
	s.PeakRSS = peak
	s.Procs = len(seen)
	b, _ := json.Marshal(s)
	if out != "" {
		if err := os.WriteFile(filepath.Clean(out), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	} else {
		fmt.Println(string(b))
	}
	return 0
}
