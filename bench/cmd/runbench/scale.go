package main

// `runbench scale` is the lab part of `make bench-scale`: for each lab size it brings up
// an ns-tier lab with the CLI (`bin/testenv up`, one command, as an operator would),
// measures up, status and down wall time, the memory of the lab's processes (RSS and PSS
// summed over the forwarder daemon and every process in the lab's namespaces) and the
// kernel's (MemAvailable and Slab before and after), the neighbour table entries, and,
// if bench/site.hcl exists, runs `bin/runbook exec bench/site.hcl` on all hosts (first
// contact, then with the helper installed) under `runbench measure`: wall, controller
// CPU from rusage, peak RSS. After down it checks that nothing of the lab is left.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runbook/runbook/testenv"
)

type scaleRow struct {
	hosts                  int
	up, status, down       time.Duration
	procs                  int
	rss, pss               int64 // bytes, summed over the lab's processes
	fwdRSS                 int64 // the forwarder daemon's share of rss
	fwdPeakRSS             int64 // the forwarder's largest RSS while runbook ran
	fwdPeakFDs             int   // and its most open file descriptors
	memAvail, slab         int64 // bytes: MemTotal-MemAvailable and Slab, change over up
	arp, ndisc             int   // neighbour table entries with the lab up
	first, installed       *Sample
	installedRuns          int
	runbookSkipped         string
	nofileSoft, nofileHard uint64
	load                   [2]string // 1-minute load average before up and after down (other work on the machine)
	notOK                  []string  // runbook runs that left hosts failed or unreachable
}

func scaleMain(args []string) int {
	fs := flag.NewFlagSet("runbench scale", flag.ContinueOnError)
	hostsFlag := fs.String("hosts", "250,500,1000", "lab sizes, comma separated, one lab at a time")
	repo := fs.String("repo", ".", "repository root (bin/testenv, bin/runbook, bench/site.hcl)")
	runs := fs.Int("runs", 3, "measured runbook runs with the helper installed, per size (median reported)")
	perSeg := fs.Int("per-segment", 0, "hosts per /24 segment (testenv up --per-segment; 0: its default)")
	noRunbook := fs.Bool("lab-only", false, "measure the lab only, do not run bin/runbook")
	settle := fs.Duration("settle", 5*time.Second, "wait after up before reading memory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "runbench scale: needs root (the lab makes namespaces)")
		return 2
	}
	if *runs < 1 || *runs > 20 {
		fmt.Fprintln(os.Stderr, "runbench scale: -runs must be between 1 and 20")
		return 2
	}
	var sizes []int
	for _, f := range strings.Split(*hostsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > testenv.MaxHosts {
			fmt.Fprintf(os.Stderr, "runbench scale: bad host count %q (1 to %d)\n", f, testenv.MaxHosts)
			return 2
		}
		sizes = append(sizes, n)
	}
	root, _ := filepath.Abs(*repo)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := config{repo: root, runbook: filepath.Join(root, "bin/runbook"), self: self}
	testenvBin := filepath.Join(root, "bin/testenv")
	need := []string{testenvBin}
	site := filepath.Join(root, "bench/site.hcl")
	withRunbook := !*noRunbook
	if withRunbook {
		if _, err := os.Stat(site); err != nil {
			fmt.Fprintf(os.Stderr, "runbench scale: %s not found: measuring the lab only\n", site)
			withRunbook = false
		} else {
			need = append(need, cfg.runbook)
		}
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(os.Stderr, "runbench scale: %v (run `make build`)\n", err)
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	start := time.Now()
	var rows []scaleRow
	for _, n := range sizes {
		r, err := scaleSize(ctx, cfg, testenvBin, site, n, *perSeg, *runs, *settle, withRunbook)
		rows = append(rows, r)
		if err != nil {
			fmt.Fprintf(os.Stderr, "runbench scale: %d hosts: %v\n", n, err)
			printScale(os.Stdout, rows)
			return 1
		}
	}
	printScale(os.Stdout, rows)
	fmt.Printf("\nmachine: %d CPUs, %s; %s; total %.0f s\n", runtime.NumCPU(), kernel(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), time.Since(start).Seconds())
	return 0
}

func scaleSize(ctx context.Context, cfg config, testenvBin, site string, n, perSeg, runs int, settle time.Duration, withRunbook bool) (row scaleRow, err error) {
	row.hosts = n
	tmp, err := os.MkdirTemp("", "runbench-scale-")
	if err != nil {
		return row, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "lab")
	lim, _ := testenv.CurrentNofile()
	row.nofileSoft, row.nofileHard = lim.Soft, lim.Hard

	row.load[0] = loadavg()
	memBefore, slabBefore := meminfo()
	upArgs := []string{"up", "--tier", "ns", "--hosts", strconv.Itoa(n), "--dir", dir}
	if perSeg > 0 {
		upArgs = append(upArgs, "--per-segment", strconv.Itoa(perSeg))
	}
	fmt.Fprintf(os.Stderr, "== %d hosts: %s %s\n", n, testenvBin, strings.Join(upArgs, " "))
	t0 := time.Now()
	out, err := runTool(ctx, testenvBin, upArgs...)
	row.up = time.Since(t0)
	fmt.Fprint(os.Stderr, indent(out))
	// Whatever happened, the lab goes down and is checked for leftovers.
	var lab *testenv.Lab
	var procs []testenv.Proc
	var namespaces []string
	defer func() {
		dctx := context.WithoutCancel(ctx)
		t0 := time.Now()
		out, derr := runTool(dctx, testenvBin, "down", "--dir", dir)
		row.down = time.Since(t0)
		row.load[1] = loadavg()
		fmt.Fprintf(os.Stderr, "== %d hosts: down in %.2fs\n%s", n, row.down.Seconds(), indent(out))
		if derr != nil {
			err = errors.Join(err, fmt.Errorf("testenv down: %w", derr))
			return
		}
		if lab != nil {
			if left := lab.Leftovers(procs); len(left) > 0 {
				err = errors.Join(err, fmt.Errorf("after down the lab left:\n%s", strings.Join(left, "\n")))
			}
		}
		for _, ns := range namespaces {
			if _, serr := os.Lstat(filepath.Join("/run/netns", ns)); serr == nil {
				err = errors.Join(err, fmt.Errorf("after down namespace %s is still there", ns))
				break
			}
		}
	}()
	if err != nil {
		return row, fmt.Errorf("testenv up: %w", err)
	}
	lab, err = testenv.Open(dir)
	if err != nil {
		return row, err
	}
	namespaces = lab.Namespaces()

	select {
	case <-ctx.Done():
		return row, ctx.Err()
	case <-time.After(settle):
	}
	// Processes names the anchors twice (recorded, and found in their namespaces).
	seen := map[int]bool{}
	for _, p := range lab.Processes() {
		if !seen[p.PID] {
			seen[p.PID] = true
			procs = append(procs, p)
		}
	}
	row.procs = len(procs)
	fwd := forwarderPID(dir)
	for _, p := range procs {
		rss, pss := procMem(p.PID)
		row.rss += rss
		row.pss += pss
		if p.PID == fwd {
			row.fwdRSS = rss
		}
	}
	memAfter, slabAfter := meminfo()
	row.memAvail, row.slab = memAfter-memBefore, slabAfter-slabBefore
	row.arp, row.ndisc = neighEntries("/proc/net/stat/arp_cache"), neighEntries("/proc/net/stat/ndisc_cache")

	t0 = time.Now()
	out, err = runTool(ctx, testenvBin, "status", "--dir", dir)
	row.status = time.Since(t0)
	if err != nil {
		return row, fmt.Errorf("testenv status: %w\n%s", err, tail(out))
	}
	want := fmt.Sprintf("%d hosts: %d running, %d answering ssh", n, n, n)
	if n > 20 && !strings.Contains(out, want) {
		return row, fmt.Errorf("testenv status: want %q:\n%s", want, tail(out))
	}
	fmt.Fprintf(os.Stderr, "   status in %.2fs; lab processes %d, RSS %.1f MiB (forwarder %.1f), PSS %.1f MiB; kernel used +%.1f MiB, slab +%.1f MiB; arp %d, ndisc %d entries\n",
		row.status.Seconds(), row.procs, mib(row.rss), mib(row.fwdRSS), mib(row.pss), mib(row.memAvail), mib(row.slab), row.arp, row.ndisc)

	if !withRunbook {
		row.runbookSkipped = "lab only"
		return row, nil
	}
	// As `make bench` runs it: its own history and state directory, every host at once.
	rbArgs := []string{cfg.runbook, "exec", site, "-i", lab.Inventory, "--forks", strconv.Itoa(n), "-q", "--no-color",
		"--history", filepath.Join(tmp, "history.db")}
	rbEnv := append(os.Environ(), "XDG_STATE_HOME="+filepath.Join(tmp, "state"))
	check := func(out string) error { return checkRecap(out, n) }
	// The forwarder relays every connection: sample its RSS and open files while runbook runs.
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			rss, _ := procMem(fwd)
			if rss > row.fwdPeakRSS {
				row.fwdPeakRSS = rss
			}
			if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", fwd)); err == nil && len(ents) > row.fwdPeakFDs {
				row.fwdPeakFDs = len(ents)
			}
			select {
			case <-sctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	defer func() { stopSampling(); <-sampled }()
	fmt.Fprintf(os.Stderr, "   runbook, first contact: %s\n", strings.Join(rbArgs, " "))
	// A run that leaves hosts failed or unreachable (exit code 2 or 3) is kept
	// and counted, with its whole output saved beside the table: at fleet size
	// that is a finding, not a reason to lose the other figures.
	keep := func(what string, i int, s Sample, out string, err error) error {
		if err == nil {
			return nil
		}
		if s.Exit != 2 && s.Exit != 3 {
			return fmt.Errorf("runbook, %s: %w", what, err)
		}
		log := fmt.Sprintf("/tmp/runbench-scale-%d-%s-%d.log", n, strings.ReplaceAll(what, " ", "-"), i)
		_ = os.WriteFile(log, []byte(out), 0o644)
		bad := n - okHosts(out)
		row.notOK = append(row.notOK, fmt.Sprintf("%s run %d: exit %d, %d of %d hosts not ok and unchanged (output: %s)", what, i+1, s.Exit, bad, n, log))
		fmt.Fprintf(os.Stderr, "   runbook, %s: exit %d, %d hosts not ok and unchanged; output in %s\n", what, s.Exit, bad, log)
		return nil
	}
	s, out, err := measured(ctx, cfg, rbArgs, rbEnv, tmp, nil)
	if err := keep("first contact", 0, s, out, err); err != nil {
		return row, err
	}
	row.first = &s
	fmt.Fprintf(os.Stderr, "   runbook, first contact: wall %.2fs cpu %.2fs peak %.1f MiB\n", s.Wall.Seconds(), s.CPU.Seconds(), rssOf(s))
	r := row0(n)
	for i := 0; i < runs; i++ {
		s, out, err := measured(ctx, cfg, rbArgs, rbEnv, tmp, check)
		if s.Exit == 0 && err != nil {
			s.Exit = 2 // ran, but not every host all ok and unchanged
		}
		if err := keep("helper installed", i, s, out, err); err != nil {
			return row, err
		}
		fmt.Fprintf(os.Stderr, "   runbook, helper installed: wall %.2fs cpu %.2fs peak %.1f MiB\n", s.Wall.Seconds(), s.CPU.Seconds(), rssOf(s))
		r.samples = append(r.samples, s)
	}
	med := Sample{Wall: time.Duration(r.med(wallOf) * float64(time.Second)), CPU: time.Duration(r.med(cpuOf) * float64(time.Second)),
		PeakRSS: int64(r.med(rssOf) * (1 << 20))}
	row.installed, row.installedRuns = &med, runs
	stopSampling()
	<-sampled
	fmt.Fprintf(os.Stderr, "   forwarder while runbook ran: peak RSS %.1f MiB, at most %d open files\n", mib(row.fwdPeakRSS), row.fwdPeakFDs)
	return row, nil
}

func row0(n int) row { return row{hosts: n, name: "runbook, helper installed"} }

// okHosts counts the hosts the recap shows all ok and unchanged.
func okHosts(out string) int {
	c := len(rbRecap.FindAllString(out, -1))
	if m := rbQuiet.FindStringSubmatch(out); m != nil {
		q, _ := strconv.Atoi(m[1])
		if ok, _ := strconv.Atoi(m[2]); ok == 8*q {
			c += q
		}
	}
	return c
}

// checkRecap wants every host all ok and unchanged, as make bench does.
func checkRecap(out string, n int) error {
	if c := okHosts(out); c != n {
		return fmt.Errorf("runbook: %d of %d hosts all ok and unchanged:\n%s", okHosts(out), n, tail(out))
	}
	return nil
}

// runTool runs one of the repository's binaries and returns its combined output.
func runTool(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// forwarderPID reads the forwarder daemon's PID from the lab's state.
func forwarderPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return 0
	}
	var st struct {
		Forwarder struct {
			PID int `json:"pid"`
		} `json:"forwarder"`
	}
	if json.Unmarshal(b, &st) != nil {
		return 0
	}
	return st.Forwarder.PID
}

// procMem is a process's resident and proportional set size in bytes.
func procMem(pid int) (rss, pss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<16))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "Rss":
			rss = kb << 10
		case "Pss":
			pss = kb << 10
		}
	}
	return rss, pss
}

// meminfo returns MemTotal-MemAvailable and Slab, in bytes.
func meminfo() (used, slab int64) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	var total, avail int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "MemTotal:":
			total = v << 10
		case "MemAvailable:":
			avail = v << 10
		case "Slab:":
			slab = v << 10
		}
	}
	return total - avail, slab
}

// neighEntries is the entries column of /proc/net/stat/{arp,ndisc}_cache (hex,
// one table for the whole machine).
func neighEntries(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 {
		return -1
	}
	f := strings.Fields(lines[1])
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseInt(f[0], 16, 64)
	if err != nil {
		return -1
	}
	return int(v)
}

// loadavg is the 1-minute load average.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "   " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n   ") + "\n"
}

func printScale(w io.Writer, rows []scaleRow) {
	fmt.Fprintln(w, "| hosts | up (s) | status (s) | down (s) | lab processes | RSS/host (MiB) | PSS/host (MiB) | forwarder RSS (MiB) | kernel used/host (MiB) | slab/host (MiB) | ARP / NDISC entries | load before / after |")
	fmt.Fprintln(w, "|------:|-------:|-----------:|---------:|--------------:|---------------:|---------------:|--------------------:|-----------------------:|----------------:|--------------------:|------:|")
	for _, r := range rows {
		h := float64(r.hosts)
		fmt.Fprintf(w, "| %d | %.2f | %.2f | %.2f | %d | %.2f | %.2f | %.1f | %.2f | %.2f | %d / %d | %s / %s |\n",
			r.hosts, r.up.Seconds(), r.status.Seconds(), r.down.Seconds(), r.procs, mib(r.rss)/h, mib(r.pss)/h, mib(r.fwdRSS),
			mib(r.memAvail)/h, mib(r.slab)/h, r.arp, r.ndisc, r.load[0], r.load[1])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| hosts | runbook exec bench/site.hcl | wall (s) | controller CPU (s) | CPU/host (ms) | peak RSS (MiB) | runs | forwarder peak RSS (MiB) / fds |")
	fmt.Fprintln(w, "|------:|------|---------:|-------------------:|--------------:|---------------:|-----:|------:|")
	for _, r := range rows {
		if r.runbookSkipped != "" {
			fmt.Fprintf(w, "| %d | (%s) | | | | | | |\n", r.hosts, r.runbookSkipped)
			continue
		}
		for _, c := range []struct {
			name string
			s    *Sample
			runs int
		}{{"first contact (helper uploaded)", r.first, 1}, {"helper installed (median)", r.installed, r.installedRuns}} {
			if c.s == nil {
				continue
			}
			fmt.Fprintf(w, "| %d | %s | %.2f | %.2f | %.2f | %.1f | %d | %.1f / %d |\n", r.hosts, c.name, c.s.Wall.Seconds(), c.s.CPU.Seconds(),
				c.s.CPU.Seconds()*1000/float64(r.hosts), rssOf(*c.s), c.runs, mib(r.fwdPeakRSS), r.fwdPeakFDs)
		}
	}
	for _, r := range rows {
		for _, b := range r.notOK {
			fmt.Fprintf(w, "\n%d hosts: %s", r.hosts, b)
		}
	}
	if len(rows) > 0 {
		fmt.Fprintf(w, "\nRLIMIT_NOFILE of this process: %d (hard %d); runbook raises its soft limit to the hard one.\n", rows[0].nofileSoft, rows[0].nofileHard)
	}
}
