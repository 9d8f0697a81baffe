package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/helperbin"
	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// soakSite is the fault soak's runbook: every healthy host makes a directory and writes a
// marker; the hosts in group "cut" and "killed" run a long task during which the test cuts
// their link, or the task kills its own helper (the shell's parent) mid-request.
const soakSite = `
variable "marker" {
  type = string
}

play "soak" {
  hosts = "all"

  task "dir" {
    file {
      path  = "/tmp/rb-soak"
      state = "directory"
    }
  }
  task "mark" {
    copy {
      dest    = "/tmp/rb-soak/mark"
      content = "${var.marker} ${host.name}\n"
    }
  }
  task "long" {
    when    = contains(host.groups, "cut") || contains(host.groups, "killed")
    timeout = "25s"
    shell {
      cmd = contains(host.groups, "killed") ? "sleep 2; kill -9 $PPID; sleep 30" : "sleep 30"
    }
  }
  task "after" {
    changed_when = false
    command {
      argv = ["cat", "/tmp/rb-soak/mark"]
    }
  }
}
`

// soakLong is the runbook of the interrupted run: every host sleeps.
const soakLong = `
play "long" {
  hosts = "all"
  task "sleep" {
    command {
      argv = ["sleep", "30"]
    }
  }
}
`

// TestSoak runs a runbook over a lab where a tenth of the hosts are faulty in every way the
// ns tier can make them, plus hosts whose sshd accepts and never answers: sshd stopped, 150
// ms latency with loss, the link cut before the run, the link cut in the middle of a task,
// a helper killed in the middle of a request. Every healthy host (the slow ones too)
// finishes with the right result and state; every faulty host is reported with its reason;
// the run ends within the slowest healthy host plus the deadlines it was given; the
// controller's goroutines and file descriptors, and the lab hosts' processes, are back to
// what they were; the history holds every host. A second run is interrupted once (SIGINT)
// mid-task: it stops within its bound with exit code 2, and leaves the same.
//
// RUNBOOK_SOAK_HOSTS sets the lab's size (30 by default; `make soak` runs 1,000).
func TestSoak(t *testing.T) {
	n := 30
	if v := os.Getenv("RUNBOOK_SOAK_HOSTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 12 {
			t.Fatalf("RUNBOOK_SOAK_HOSTS=%q: want a number of at least 12", v)
		}
	}
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: n})
	r := labtest.New(t, lab)

	// A tenth of the hosts are faulty, spread over the kinds; the rest are healthy.
	per := max(1, n/60)
	kinds := []string{"stop", "slow", "drop", "cut", "killed"}
	fault := map[string]string{}
	names := make([]string, 0, n)
	for _, h := range lab.Hosts {
		names = append(names, h.Name)
	}
	sort.Strings(names)
	for i, k := range kinds {
		for j := 0; j < per; j++ {
			fault[names[len(names)-1-i*per-j]] = k
		}
	}
	// sshds that accept and never answer: listeners of this test, as hosts of the inventory
	var silent []string
	var lns []net.Listener
	var held sync.WaitGroup
	for i := 0; i < per; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		held.Add(1)
		go func() {
			defer held.Done()
			var conns []net.Conn
			for {
				c, err := ln.Accept()
				if err != nil {
					for _, c := range conns {
						c.Close()
					}
					return
				}
				conns = append(conns, c) // accepted, never answered
			}
		}()
		silent = append(silent, fmt.Sprintf("silent%02d", i+1))
	}
	var stopOnce sync.Once
	stopSilent := func() {
		stopOnce.Do(func() {
			for _, ln := range lns {
				ln.Close()
			}
			held.Wait()
		})
	}
	t.Cleanup(stopSilent)

	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.hcl")
	src, err := os.ReadFile(lab.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.Write(src)
	for i, name := range silent {
		port := lns[i].Addr().(*net.TCPAddr).Port
		fmt.Fprintf(&b, "\nhost %q {\n  address = \"127.0.0.1\"\n  port = %d\n  user = \"root\"\n  identity_file = %q\n}\n", name, port, lab.Key)
	}
	for _, g := range []string{"cut", "killed"} {
		var members []string
		for h, k := range fault {
			if k == g {
				members = append(members, strconv.Quote(h))
			}
		}
		sort.Strings(members)
		fmt.Fprintf(&b, "group %q { hosts = [%s] }\n", g, strings.Join(members, ", "))
	}
	if err := os.WriteFile(inv, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(dir, "site.hcl")
	if err := os.WriteFile(site, []byte(soakSite), 0o644); err != nil {
		t.Fatal(err)
	}
	hist := filepath.Join(dir, "history.db")

	for h, k := range fault {
		switch k {
		case "stop", "slow", "drop":
			if err := lab.Break(h, testenv.BreakMode(k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	healthy := func(h string) bool { k := fault[h]; return k == "" || k == "slow" }
	procsBefore := hostProcs(t, lab, names, healthy)

	// The cut: once the hosts in "cut" are in their long task, their links go down.
	cutDone := make(chan struct{})
	var cut []string
	for h, k := range fault {
		if k == "cut" {
			cut = append(cut, h)
		}
	}
	cutNS := netnsOf(t, lab, cut) // read here: the goroutine below must not end the test
	cutStart := make(chan time.Time, 1)
	connsDuring := 0 // the controller's connections to the hosts while the cut hosts wait
	runDone := make(chan struct{})
	go func() {
		defer close(cutDone)
		start := <-cutStart
		// Each cut host is cut once it is in its long task. At fleet size the cut hosts
		// reach it at different times, some after minutes (the helper's pushes take turns,
		// --max-pushes); one not there when the run ends is cut then, and its result says
		// the test missed its moment.
		pending := map[string]bool{}
		for _, h := range cut {
			pending[h] = true
		}
		cutOne := func(h string) {
			if err := lab.Break(h, testenv.BreakDrop); err != nil {
				t.Error(err)
			}
			delete(pending, h)
			if len(pending) == 0 {
				connsDuring = hostConns(t, hostPorts(lab, lns))
			}
		}
	wait:
		for deadline := time.Now().Add(60*time.Second + time.Duration(n)*300*time.Millisecond); len(pending) > 0 && time.Now().Before(deadline); {
			select {
			case <-runDone:
				break wait
			case <-time.After(200 * time.Millisecond):
			}
			for h := range sleeping(cutNS) {
				if pending[h] {
					cutOne(h)
				}
			}
		}
		late := len(pending)
		for _, h := range cut {
			if pending[h] {
				cutOne(h)
			}
		}
		t.Logf("cut %v by %s after the start (%d not in their long task by then)", cut, time.Since(start).Round(time.Millisecond), late)
	}()
	// A short connect timeout, so that the silent hosts are given up on soon; at fleet size
	// the default, as a first contact with a thousand hosts sharing two CPUs needs it.
	connectTimeout, keepalive := 8*time.Second, time.Second
	if n > 100 {
		connectTimeout = 30 * time.Second
	}
	goBefore, fdsBefore := settledGoroutines(0), openFDs(t)
	start := time.Now()
	cutStart <- start
	// Every host at once, so that no host waits for another's place (--forks) and each
	// host's last result says when it was done. The lab's hosts share this machine's two
	// CPUs with the controller: a thousand setups at once would all finish late, past the
	// short connect timeout, so they take turns (--max-startups), as they would through
	// one bastion.
	last := &lastResults{start: start, at: map[string]time.Duration{}}
	res := r.RunTee(last, "exec", site, "-i", inv, "--var", "marker=soak-1", "-o", "json", "--forks", strconv.Itoa(n+len(silent)),
		"--max-startups", "100", "--connect-timeout", connectTimeout.String(), "--keepalive", keepalive.String(), "--history", hist)
	took := time.Since(start)
	close(runDone)
	<-cutDone
	t.Logf("soak: %d lab hosts + %d silent, %d faulty per kind: exit %d in %s", n, len(silent), per, res.Code, took.Round(time.Millisecond))

	type result struct {
		Type, Host, Task, Status, Msg string
	}
	byHost := map[string][]result{}
	slowest := time.Duration(0)
	for _, line := range strings.Split(res.Out, "\n") {
		var e result
		if json.Unmarshal([]byte(line), &e) != nil || e.Type != "result" {
			continue
		}
		byHost[e.Host] = append(byHost[e.Host], e)
	}
	want := func(h, task, status, msg string) {
		t.Helper()
		for _, e := range byHost[h] {
			if e.Task == task && e.Status == status && strings.Contains(e.Msg, msg) {
				return
			}
		}
		t.Errorf("%s (%s): no %s result of %q with %q; got %+v", h, fault[h], status, task, msg, byHost[h])
	}
	for _, h := range names {
		switch fault[h] {
		case "", "slow":
			want(h, "dir", "changed", "")
			want(h, "mark", "changed", "")
			want(h, "long", "skipped", "")
			want(h, "after", "ok", "")
			slowest = max(slowest, last.of(h))
		case "stop":
			want(h, "connect", "unreachable", "") // refused, or reset by the lab's forwarder
		case "drop":
			want(h, "connect", "unreachable", "")
		case "cut":
			want(h, "long", "unreachable", "")
		case "killed":
			want(h, "long", "failed", "helper")
		}
	}
	for _, h := range silent {
		want(h, "connect", "unreachable", "")
	}
	if res.Code != 2 {
		t.Errorf("exit %d, want 2 (a helper was killed)", res.Code)
	}
	// The run ends within the slowest healthy host (its last result, counted from the
	// start) plus the deadlines: a connect timeout, keepalives, and the cut task's wait,
	// with a margin for this loaded machine.
	if bound := slowest + connectTimeout + 4*keepalive + 30*time.Second; took > bound {
		t.Errorf("the run took %s; the slowest healthy host was done after %s, the bound is %s", took, slowest, bound)
	} else {
		t.Logf("the run took %s; the slowest healthy host was done after %s, the bound is %s", took, slowest, bound)
	}
	for _, h := range names {
		if !healthy(h) {
			continue
		}
		out, err := lab.Exec(context.Background(), h, "cat", "/tmp/rb-soak/mark")
		if err != nil || string(out) != "soak-1 "+h+"\n" {
			t.Errorf("%s: mark is %q (%v)", h, out, err)
		}
	}
	// Nothing left behind: the controller's goroutines and descriptors, the hosts'
	// processes (helpers, sessions).
	if g := settledGoroutines(goBefore); g > goBefore+5 {
		t.Errorf("goroutines: %d before the run, %d after\n%s", goBefore, g, goroutineDump())
	} else {
		t.Logf("goroutines of the process but the lab's: %d before the run, %d after", goBefore, g)
	}
	stopSilent() // the connections the silent hosts accepted are this test's, not the controller's
	// The controller's connections to the hosts: sockets of this process whose peer is a
	// host's port (the lab's own descriptors, its forwarders and namespaces, are not).
	ports := hostPorts(lab, lns)
	if connsDuring == 0 {
		t.Errorf("no connection to the hosts was seen during the run: the check below could not see one either")
	}
	conns := hostConns(t, ports)
	for deadline := time.Now().Add(10 * time.Second); conns > 0 && time.Now().Before(deadline); conns = hostConns(t, ports) {
		time.Sleep(100 * time.Millisecond)
	}
	if conns > 0 {
		t.Errorf("%d connections to the hosts are still open after the run", conns)
	}
	t.Logf("connections to the hosts: %d while the cut hosts waited, %d after the run; file descriptors of the test process: %d before, %d after (the lab's included)",
		connsDuring, conns, fdsBefore, openFDs(t))
	waitProcs(t, lab, names, healthy, procsBefore)
	// The history holds every host.
	rep := r.Run("report", "--history", hist, "-o", "json")
	if rep.Code != 0 {
		t.Fatalf("report: exit %d\n%s", rep.Code, rep.Out)
	}
	for _, h := range append(append([]string{}, names...), silent...) {
		if !strings.Contains(rep.Out, strconv.Quote(h)) {
			t.Errorf("the history has no %s", h)
		}
	}

	// Interrupted once, mid-task: the real binary, sent SIGINT.
	for h, k := range fault {
		if k != "" {
			if err := lab.Heal(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	procsBefore = hostProcs(t, lab, names, func(string) bool { return true })
	long := filepath.Join(dir, "long.hcl")
	if err := os.WriteFile(long, []byte(soakLong), 0o644); err != nil {
		t.Fatal(err)
	}
	allNS := netnsOf(t, lab, names)
	bin := runbookBinary(t)
	cmd := exec.Command(bin, "exec", long, "-i", lab.Inventory, "--forks", "200", "--history", hist)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_STATE_HOME=" + t.TempDir(), "NO_COLOR=1",
		"SSH_AUTH_SOCK=", helperbin.EnvDir + "=" + os.Getenv(helperbin.EnvDir)}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Interrupt once every host has started its task (or after 20 s).
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if len(sleeping(allNS)) == len(names) {
			break
		}
	}
	sent := time.Now()
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		code := cmd.ProcessState.ExitCode()
		if code != 2 || err == nil {
			t.Errorf("interrupted run: exit %d (%v), want 2\n%s", code, err, out.String())
		}
		if d := time.Since(sent); d > 15*time.Second {
			t.Errorf("the interrupted run took %s to stop", d)
		}
		t.Logf("interrupted run stopped %s after SIGINT", time.Since(sent).Round(time.Millisecond))
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the interrupted run did not stop within 60 s of SIGINT\n%s", out.String())
	}
	if !strings.Contains(out.String(), "interrupted") {
		t.Errorf("the interrupted run does not say so:\n%s", out.String())
	}
	waitProcs(t, lab, names, func(string) bool { return true }, procsBefore)
	rep = r.Run("report", "--history", hist, "-o", "json")
	if rep.Code != 0 {
		t.Fatalf("report: exit %d\n%s", rep.Code, rep.Out)
	}
	for _, h := range names {
		if !strings.Contains(rep.Out, strconv.Quote(h)) {
			t.Errorf("the history of the interrupted run has no %s", h)
		}
	}
}

// hostProcs counts, per host, the processes in its network namespace (its sshd, and any
// session or helper), found by the namespace's inode in /proc.
func hostProcs(t *testing.T, lab *testenv.Lab, names []string, keep func(string) bool) map[string]int {
	t.Helper()
	inodes := map[string]string{}
	for _, h := range names {
		if !keep(h) {
			continue
		}
		out, err := lab.Exec(context.Background(), h, "readlink", "/proc/self/ns/net")
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		inodes[strings.TrimSpace(string(out))] = h
	}
	counts := map[string]int{}
	for h := range inodes {
		counts[inodes[h]] = 0
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err != nil {
			continue
		}
		if h, ok := inodes[ns]; ok {
			counts[h]++
		}
	}
	return counts
}

// waitProcs waits (up to 20 s: sessions end after the controller lets go) until every kept
// host has no more processes than before, and reports those that still have.
func waitProcs(t *testing.T, lab *testenv.Lab, names []string, keep func(string) bool, before map[string]int) {
	t.Helper()
	var now map[string]int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		now = hostProcs(t, lab, names, keep)
		extra := false
		for h, c := range now {
			extra = extra || c > before[h]
		}
		if !extra {
			return
		}
	}
	for h, c := range now {
		if c > before[h] {
			t.Errorf("%s: %d processes in its namespace before the run, %d after", h, before[h], c)
		}
	}
}

// netnsOf maps the network namespaces of the hosts (as /proc/PID/ns/net reads) to their
// names.
func netnsOf(t *testing.T, lab *testenv.Lab, names []string) map[string]string {
	t.Helper()
	inodes := map[string]string{}
	for _, h := range names {
		out, err := lab.Exec(context.Background(), h, "readlink", "/proc/self/ns/net")
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		inodes[strings.TrimSpace(string(out))] = h
	}
	return inodes
}

// sleeping returns the hosts (by their namespaces, netnsOf) with a `sleep 30` (a task of
// the soak's) running in their network namespace.
func sleeping(inodes map[string]string) map[string]bool {
	found := map[string]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err != nil || inodes[ns] == "" {
			continue
		}
		if cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil &&
			strings.Contains(strings.ReplaceAll(string(cmd), "\x00", " "), "sleep 30") {
			found[inodes[ns]] = true
		}
	}
	return found
}

// settledGoroutines returns the number of goroutines once it stops falling (connections
// close in the background), waiting at most 10 s for it to reach floor.
func settledGoroutines(floor int) int {
	n, _ := controllerGoroutines()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && n > floor+5; {
		time.Sleep(100 * time.Millisecond)
		n, _ = controllerGoroutines()
	}
	return n
}

// controllerGoroutines counts this process's goroutines but the lab's, and returns their
// stacks. The lab's forwarder runs in this process, and its relay for a host whose link
// was cut waits for TCP to give up, minutes after the run: that is the lab's, not the
// controller's.
func controllerGoroutines() (int, string) {
	buf := make([]byte, 64<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	var kept []string
	for _, g := range strings.Split(all, "\n\n") {
		if !strings.Contains(g, "runbook/runbook/testenv.") {
			kept = append(kept, g)
		}
	}
	return len(kept), strings.Join(kept, "\n\n")
}

func goroutineDump() string {
	_, s := controllerGoroutines()
	return s
}

// hostPorts are the ports the controller reaches the hosts at: the lab's and the silent
// hosts'.
func hostPorts(lab *testenv.Lab, lns []net.Listener) map[int]bool {
	ports := map[int]bool{}
	for _, h := range lab.Hosts {
		ports[h.Port] = true
	}
	for _, ln := range lns {
		ports[ln.Addr().(*net.TCPAddr).Port] = true
	}
	return ports
}

// hostConns counts this process's open TCP sockets whose peer is 127.0.0.1 at one of
// ports, from /proc/self/fd and /proc/net/tcp.
func hostConns(t *testing.T, ports map[int]bool) int {
	t.Helper()
	peers := map[string]bool{} // socket inodes with such a peer
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 {
				continue
			}
			_, port, ok := strings.Cut(fs[2], ":")
			p, err := strconv.ParseInt(port, 16, 32)
			if ok && err == nil && ports[int(p)] && fs[3] != "0A" { // not a listener
				peers["socket:["+fs[9]+"]"] = true
			}
		}
	}
	n := 0
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && peers[l] {
			n++
		}
	}
	return n
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// lastResults notes, from a run's JSON output as it comes, when each host's last result
// arrived (since start).
type lastResults struct {
	start   time.Time
	mu      sync.Mutex
	at      map[string]time.Duration
	partial []byte
}

func (l *lastResults) Write(p []byte) (int, error) {
	now := time.Since(l.start)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		var e struct{ Type, Host string }
		if json.Unmarshal(l.partial[:i], &e) == nil && e.Type == "result" {
			l.at[e.Host] = now
		}
		l.partial = l.partial[i+1:]
	}
}

func (l *lastResults) of(host string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.at[host]
}
