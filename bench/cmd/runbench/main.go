// Command runbench is the benchmark behind `make bench`: for each lab size it starts an
// ns-tier lab, runs bench/site.hcl with bin/runbook, bench/site.yml with ansible-playbook
// and a minimal Go SSH client (the floor) against the same hosts, prints a markdown table
// of medians, and tears the lab down. It needs root (the lab does). See docs/performance.md.
package main

import (
	"bytes"
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
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runbook/runbook/cmd/runbook/cli"
	"github.com/runbook/runbook/testenv"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "measure":
			os.Exit(measureMain(os.Args[2:]))
		case "floor":
			os.Exit(floorMain(os.Args[2:]))
		case "profile":
			os.Exit(profileMain(os.Args[2:]))
		case "scale":
			os.Exit(scaleMain(os.Args[2:]))
		}
	}
	os.Exit(driverMain(os.Args[1:]))
}

// profileMain is `runbench profile FILE -- runbook ARGS...`: runbook's CLI in this process
// under a CPU profile (engine code untouched), and FILE.heap beside it.
func profileMain(args []string) int {
	if len(args) < 2 || args[1] != "--" {
		fmt.Fprintln(os.Stderr, "usage: runbench profile FILE -- ARGS...")
		return 2
	}
	f, err := os.Create(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	stop := peakHeap(args[0] + ".peak")
	rc := cli.Run(args[2:], nil, io.Discard, os.Stderr, os.Environ())
	pprof.StopCPUProfile()
	peak, stacks, sys := stop()
	// Beside it, FILE.heap: every allocation of the run (go tool pprof -sample_index=alloc_space).
	if h, err := os.Create(args[0] + ".heap"); err == nil {
		_ = pprof.Lookup("allocs").WriteTo(h, 0)
		_ = h.Close()
	}
	mib := func(n uint64) float64 { return float64(n) / (1 << 20) }
	fmt.Fprintf(os.Stderr, "runbench: heap in use at most %.1f MiB, with %.1f MiB of stacks and %.1f MiB from the OS then (%s.peak: the heap's live objects then)\n",
		mib(peak), mib(stacks), mib(sys), args[0])
	return rc
}

// peakHeap samples the heap every 200 ms until stop is called; each time its in-use bytes
// pass the highest seen, it writes a heap profile to file, whose inuse_space is then what
// was live at (near) the peak: the objects to cut for a lower peak RSS; and the goroutines
// then to file.goroutines. stop returns the
// highest in-use bytes seen, and the stacks' bytes and those taken from the OS then.
func peakHeap(file string) (stop func() (peak, stacks, sys uint64)) {
	done, exited := make(chan struct{}), make(chan struct{})
	var peak, stacks, sys uint64
	go func() {
		defer close(exited)
		var written uint64 // the in-use bytes when the profile was last written
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			// Written only past the last one written by a tenth, so a slow climb does not write a
			// profile at every tick.
			if m.HeapInuse > peak {
				peak, stacks, sys = m.HeapInuse, m.StackInuse, m.Sys
			}
			if m.HeapInuse <= written+written/10 {
				continue
			}
			written = m.HeapInuse
			runtime.GC() // the profile's in-use figures are those of the last collection
			for name, prof := range map[string]string{file: "heap", file + ".goroutines": "goroutine"} {
				if f, err := os.Create(name); err == nil {
					_ = pprof.Lookup(prof).WriteTo(f, 0)
					_ = f.Close()
				}
			}
		}
	}()
	return func() (uint64, uint64, uint64) {
		close(done)
		<-exited
		return peak, stacks, sys
	}
}

type config struct {
	repo, runbook, helper, self string
	runs, ansibleRuns           int
	profileDir                  string
	verbose                     bool
	// baseline is an earlier runbook binary measured beside this one, run for run.
	baseline string
	// runbookOnly leaves out ansible-playbook and the floor.
	runbookOnly bool
}

// row is one line of the table: the medians of several samples.
type row struct {
	hosts   int
	name    string
	samples []Sample
}

func (r row) med(f func(Sample) float64) float64 {
	v := make([]float64, len(r.samples))
	for i, s := range r.samples {
		v[i] = f(s)
	}
	sort.Float64s(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func wallOf(s Sample) float64 { return s.Wall.Seconds() }
func cpuOf(s Sample) float64  { return s.CPU.Seconds() }
func rssOf(s Sample) float64  { return float64(s.PeakRSS) / (1 << 20) }

func driverMain(args []string) int {
	fs := flag.NewFlagSet("runbench", flag.ContinueOnError)
	hostsFlag := fs.String("hosts", "1,10,50", "lab sizes, comma separated")
	runs := fs.Int("runs", 5, "measured runs of runbook and of the floor per lab size (median reported)")
	ansibleRuns := fs.Int("ansible-runs", 3, "measured runs of ansible-playbook per lab size")
	repo := fs.String("repo", ".", "repository root")
	verbose := fs.Bool("v", false, "print every sample")
	baseline := fs.String("baseline", "", "an earlier runbook binary (with its own helper embedded) to measure beside this one: each runbook run is followed by the same run of the baseline, on the same lab")
	runbookOnly := fs.Bool("runbook-only", false, "measure runbook (and the baseline) only, not ansible-playbook or the floor")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "runbench: needs root (the lab makes namespaces)")
		return 2
	}
	if *runs < 3 || *ansibleRuns < 3 || *runs > 50 || *ansibleRuns > 50 {
		fmt.Fprintln(os.Stderr, "runbench: -runs and -ansible-runs must be between 3 and 50")
		return 2
	}
	var sizes []int
	for _, f := range strings.Split(*hostsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 200 {
			fmt.Fprintf(os.Stderr, "runbench: bad host count %q\n", f)
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
	cfg := config{
		repo: root, runbook: filepath.Join(root, "bin/runbook"),
		helper: filepath.Join(root, "engine/helperbin/bin/runbook-helper-linux-"+runtime.GOARCH),
		self:   self, runs: *runs, ansibleRuns: *ansibleRuns, verbose: *verbose,
		profileDir: os.Getenv("RUNBENCH_CPUPROFILE"), runbookOnly: *runbookOnly,
	}
	if *baseline != "" {
		if cfg.baseline, err = filepath.Abs(*baseline); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if _, err := os.Stat(cfg.baseline); err != nil {
			fmt.Fprintf(os.Stderr, "runbench: baseline: %v\n", err)
			return 2
		}
	}
	need := []string{cfg.runbook, cfg.helper}
	if !cfg.runbookOnly {
		need = append(need, "/usr/bin/ansible-playbook")
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(os.Stderr, "runbench: %v (run `make build`; ansible-core must be installed)\n", err)
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	start := time.Now()
	var rows []row
	for _, n := range sizes {
		rs, err := benchSize(ctx, cfg, n)
		rows = append(rows, rs...)
		if err != nil {
			fmt.Fprintf(os.Stderr, "runbench: %d hosts: %v\n", n, err)
			printTable(os.Stdout, rows)
			return 1
		}
	}
	printTable(os.Stdout, rows)
	fmt.Printf("\nmachine: %d CPUs, %s; %s; total %.0f s\n", runtime.NumCPU(), kernel(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), time.Since(start).Seconds())
	return 0
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(b))
}

var (
	rbRecap = regexp.MustCompile(`(?m)^  \S+\s+ok=8 changed=0 drift=0 failed=0 unreachable=0 skipped=0$`)
	rbQuiet = regexp.MustCompile(`(?m)^  (\d+) more hosts with nothing to report \(ok=(\d+) skipped=0 in all`)
	anRecap = regexp.MustCompile(`(?m)^\S+\s+: ok=8\s+changed=0\s+unreachable=0\s+failed=0\s`)
)

func benchSize(ctx context.Context, cfg config, n int) (rows []row, err error) {
	tmp, err := os.MkdirTemp("", "runbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(os.Stderr, "== %d hosts: lab up\n", n)
	lab, err := testenv.Up(ctx, testenv.Options{Tier: testenv.TierNS, Hosts: n, Dir: filepath.Join(tmp, "lab")})
	if err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if derr := lab.Down(dctx); derr != nil {
			err = errors.Join(err, fmt.Errorf("lab down: %w", derr))
		}
		fmt.Fprintf(os.Stderr, "== %d hosts: lab down\n", n)
	}()

	// The lab's hosts have a stock /root: check that neither tool pays for this
	// machine's .bashrc (which runs pyenv).
	out, err := lab.Exec(ctx, lab.Hosts[0].Name, "sh", "-c", "grep -c pyenv /root/.bashrc || true")
	if err != nil {
		return nil, fmt.Errorf("check .bashrc: %w", err)
	}
	fmt.Fprintf(os.Stderr, "   %s: lines mentioning pyenv in /root/.bashrc: %s\n", lab.Hosts[0].Name, strings.TrimSpace(string(out)))

	hosts := make([]floorHost, len(lab.Hosts))
	for i, h := range lab.Hosts {
		hosts[i] = floorHost{h.Name, h.Port}
	}
	hostsJSON := filepath.Join(tmp, "hosts.json")
	b, _ := json.Marshal(hosts)
	if err := os.WriteFile(hostsJSON, b, 0o644); err != nil {
		return nil, err
	}

	site := filepath.Join(cfg.repo, "bench/site.hcl")
	// The run is recorded in a history of the benchmark's own, as a real run would be.
	runbookArgs := []string{cfg.runbook, "exec", site, "-i", lab.Inventory, "--forks", strconv.Itoa(n), "-q", "--no-color",
		"--history", filepath.Join(tmp, "history.db")}
	// runbook keeps what it knows of the hosts' helpers (helper-stamps.json) in a state
	// directory of the benchmark's own, as it would in the operator's.
	rbEnv := append(os.Environ(), "XDG_STATE_HOME="+filepath.Join(tmp, "state"))
	rbCheck := func(out string) error {
		c := len(rbRecap.FindAllString(out, -1))
		// Past 20 hosts the recap sums up the hosts with nothing to report in one line.
		if m := rbQuiet.FindStringSubmatch(out); m != nil {
			q, _ := strconv.Atoi(m[1])
			if ok, _ := strconv.Atoi(m[2]); ok == 8*q {
				c += q
			}
		}
		if c != n {
			return fmt.Errorf("runbook: %d of %d hosts all ok and unchanged:\n%s", c, n, tail(out))
		}
		return nil
	}
	floorArgs := func(sessions int, upload bool) []string {
		a := []string{cfg.self, "floor", "-hosts", hostsJSON, "-known-hosts", lab.KnownHosts, "-key", lab.Key, "-sessions", strconv.Itoa(sessions)}
		if upload {
			a = append(a, "-upload", cfg.helper)
		}
		return a
	}
	floorCheck := func(out string) error {
		if !strings.Contains(out, fmt.Sprintf("floor: %d hosts ok", n)) {
			return fmt.Errorf("floor failed:\n%s", tail(out))
		}
		return nil
	}
	wipeHelper := func() error {
		for _, h := range lab.Hosts {
			if _, err := lab.Exec(ctx, h.Name, "rm", "-rf", "/var/lib/runbook/helper"); err != nil {
				return fmt.Errorf("wipe helper on %s: %w", h.Name, err)
			}
		}
		return nil
	}
	wipeUpload := func() error {
		for _, h := range lab.Hosts {
			if _, err := lab.Exec(ctx, h.Name, "rm", "-rf", filepath.Dir(uploadPath)); err != nil {
				return fmt.Errorf("wipe upload on %s: %w", h.Name, err)
			}
		}
		return nil
	}

	// Ansible: its own ANSIBLE_HOME, temp and control-path directories per run, so every
	// measured run connects from scratch, as runbook and the floor do.
	ansibleRun := func(i int) ([]string, []string, string) {
		d := filepath.Join(tmp, fmt.Sprintf("ansible-%d", i))
		_ = os.MkdirAll(filepath.Join(d, "cp"), 0o700)
		_ = os.WriteFile(filepath.Join(d, "none.cfg"), nil, 0o644) // no ansible.cfg from anywhere else
		env := append(os.Environ(),
			"ANSIBLE_HOME="+d,
			"ANSIBLE_LOCAL_TEMP="+filepath.Join(d, "tmp"),
			"ANSIBLE_CONFIG="+filepath.Join(d, "none.cfg"),
			"ANSIBLE_FORKS="+strconv.Itoa(n),
			"ANSIBLE_PIPELINING=True",
			"ANSIBLE_SSH_ARGS=-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile="+lab.KnownHosts+" -o StrictHostKeyChecking=yes",
			"ANSIBLE_SSH_CONTROL_PATH_DIR="+filepath.Join(d, "cp"),
			"ANSIBLE_HOST_KEY_CHECKING=True",
			"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3",
			"ANSIBLE_GATHERING=explicit",
			"ANSIBLE_NOCOLOR=1",
			"ANSIBLE_RETRY_FILES_ENABLED=False",
		)
		return []string{"/usr/bin/ansible-playbook", "-i", lab.InventoryINI, filepath.Join(cfg.repo, "bench/site.yml")}, env, d
	}
	anCheck := func(out string) error {
		if c := len(anRecap.FindAllString(out, -1)); c != n {
			return fmt.Errorf("ansible: %d of %d hosts all ok and unchanged:\n%s", c, n, tail(out))
		}
		return nil
	}

	// Warm up: the first runbook run creates the files and installs the helper; then
	// every tool must find nothing to change.
	fmt.Fprintf(os.Stderr, "   warm-up\n")
	if _, _, err := measured(ctx, cfg, runbookArgs, rbEnv, tmp, nil); err != nil {
		return nil, err
	}
	if _, _, err := measured(ctx, cfg, runbookArgs, rbEnv, tmp, rbCheck); err != nil {
		return nil, err
	}
	baselineArgs := func(argv []string) []string {
		return append([]string{cfg.baseline}, argv[1:]...)
	}
	if cfg.baseline != "" {
		// The baseline installs its own helper (another build, another path).
		if _, _, err := measured(ctx, cfg, baselineArgs(runbookArgs), rbEnv, tmp, rbCheck); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
	}
	if !cfg.runbookOnly {
		a, env, dir := ansibleRun(0)
		if _, _, err := measured(ctx, cfg, a, env, dir, anCheck); err != nil {
			return nil, err
		}
		if _, _, err := measured(ctx, cfg, floorArgs(1, false), nil, tmp, floorCheck); err != nil {
			return nil, err
		}
	}

	type variant struct {
		name   string
		runs   int
		before func() error
		argv   func(i int) ([]string, []string, string)
		check  func(string) error
	}
	plain := func(argv []string) func(int) ([]string, []string, string) {
		return func(int) ([]string, []string, string) { return argv, nil, tmp }
	}
	rb := func(int) ([]string, []string, string) { return runbookArgs, rbEnv, tmp }
	variants := []variant{
		{"runbook, helper installed", cfg.runs, nil, rb, rbCheck},
		// The same with every start hashing the helper (no stamps), to show what that costs.
		{"runbook, installed, --verify-helper always", cfg.runs, nil, func(int) ([]string, []string, string) {
			return append(append([]string(nil), runbookArgs...), "--verify-helper", "always"), rbEnv, tmp
		}, rbCheck},
		{"runbook, first contact", cfg.runs, wipeHelper, rb, rbCheck},
		{"ansible-playbook", cfg.ansibleRuns, nil, func(i int) ([]string, []string, string) { return ansibleRun(i + 1) }, anCheck},
		{"floor, 1 session/host", cfg.runs, nil, plain(floorArgs(1, false)), floorCheck},
		{"floor, 7 sessions/host", cfg.runs, nil, plain(floorArgs(7, false)), floorCheck},
		{"floor + SFTP upload, 1 session/host", cfg.runs, wipeUpload, plain(floorArgs(1, true)), floorCheck},
	}
	// Each group's variants run in turn, run for run, so that a baseline and this build
	// meet the same moments of a noisy machine.
	var groups [][]variant
	for _, v := range variants {
		isRunbook := strings.HasPrefix(v.name, "runbook")
		if cfg.runbookOnly && !isRunbook {
			continue
		}
		g := []variant{v}
		if cfg.baseline != "" && isRunbook {
			b := v
			b.name = "baseline" + strings.TrimPrefix(v.name, "runbook")
			b.argv = func(i int) ([]string, []string, string) {
				argv, env, dir := v.argv(i)
				return baselineArgs(argv), env, dir
			}
			g = append(g, b)
		}
		groups = append(groups, g)
	}
	for _, g := range groups {
		rs := make([]row, len(g))
		for j, v := range g {
			rs[j] = row{hosts: n, name: v.name}
		}
		for i := 0; i < g[0].runs; i++ {
			for j, v := range g {
				if v.before != nil {
					if err := v.before(); err != nil {
						return rows, err
					}
				}
				argv, env, dir := v.argv(i)
				s, _, err := measured(ctx, cfg, argv, env, dir, v.check)
				if err != nil {
					return rows, fmt.Errorf("%s: %w", v.name, err)
				}
				if cfg.verbose {
					fmt.Fprintf(os.Stderr, "   %-36s wall %6.3fs cpu %6.3fs (direct %6.3fs, /proc %6.3fs) peak %6.1f MiB maxrss %6.1f MiB procs %d orphans %d\n",
						v.name, s.Wall.Seconds(), s.CPU.Seconds(), s.CPUDirect.Seconds(), s.CPUProc.Seconds(), rssOf(s), float64(s.MaxRSS)/(1<<20), s.Procs, s.Orphans)
				}
				rs[j].samples = append(rs[j].samples, s)
			}
		}
		for _, r := range rs {
			fmt.Fprintf(os.Stderr, "   %-36s median wall %.3fs cpu %.3fs peak %.1f MiB\n", r.name, r.med(wallOf), r.med(cpuOf), r.med(rssOf))
		}
		rows = append(rows, rs...)
	}
	if cfg.profileDir != "" {
		for _, c := range []struct {
			name   string
			before func() error
		}{{"installed", nil}, {"first-contact", wipeHelper}} {
			if c.before != nil {
				if err := c.before(); err != nil {
					return rows, err
				}
			}
			prof := filepath.Join(cfg.profileDir, fmt.Sprintf("runbook-%d-%s.pprof", n, c.name))
			argv := append([]string{cfg.self, "profile", prof, "--"}, runbookArgs[1:]...)
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Env = append(rbEnv, "RUNBOOK_HELPER_DIR="+filepath.Dir(cfg.helper))
			if out, err := cmd.CombinedOutput(); err != nil {
				return rows, fmt.Errorf("profile: %v\n%s", err, out)
			}
			fmt.Fprintf(os.Stderr, "   CPU profile: %s\n", prof)
		}
	}
	return rows, nil
}

// measured runs argv under `runbench measure` and returns its Sample and output.
func measured(ctx context.Context, cfg config, argv, env []string, dir string, check func(string) error) (Sample, string, error) {
	res := filepath.Join(dir, "sample.json")
	_ = os.Remove(res)
	full := append([]string{cfg.self, "measure", "-o", res, "--"}, argv...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Sample{}, out.String(), fmt.Errorf("%s: %v\n%s", filepath.Base(argv[0]), err, tail(out.String()))
	}
	var s Sample
	b, err := os.ReadFile(res)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		return s, out.String(), err
	}
	if s.Exit != 0 {
		return s, out.String(), fmt.Errorf("%s exited %d:\n%s", filepath.Base(argv[0]), s.Exit, tail(out.String()))
	}
	if check != nil {
		if err := check(out.String()); err != nil {
			return s, out.String(), err
		}
	}
	return s, out.String(), nil
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func printTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| hosts | what | wall (s) | controller CPU (s) | peak RSS of tree (MiB) | runs |")
	fmt.Fprintln(w, "|------:|------|---------:|-------------------:|-----------------------:|-----:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %d | %s | %.3f | %.3f | %.1f | %d |\n", r.hosts, r.name, r.med(wallOf), r.med(cpuOf), r.med(rssOf), len(r.samples))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| hosts | ratio | wall | CPU | peak RSS |")
	fmt.Fprintln(w, "|------:|-------|-----:|----:|---------:|")
	find := func(n int, name string) *row {
		for i := range rows {
			if rows[i].hosts == n && rows[i].name == name {
				return &rows[i]
			}
		}
		return nil
	}
	seen := map[int]bool{}
	for _, r := range rows {
		if seen[r.hosts] {
			continue
		}
		seen[r.hosts] = true
		ratio := func(label, a, b string) {
			x, y := find(r.hosts, a), find(r.hosts, b)
			if x == nil || y == nil {
				return
			}
			fmt.Fprintf(w, "| %d | %s | %.1f× | %.1f× | %.1f× |\n", r.hosts, label,
				x.med(wallOf)/y.med(wallOf), x.med(cpuOf)/y.med(cpuOf), x.med(rssOf)/y.med(rssOf))
		}
		ratio("ansible-playbook ÷ runbook (installed)", "ansible-playbook", "runbook, helper installed")
		ratio("runbook (installed) ÷ floor, 1 session", "runbook, helper installed", "floor, 1 session/host")
		ratio("runbook (installed) ÷ floor, 7 sessions", "runbook, helper installed", "floor, 7 sessions/host")
		ratio("runbook (--verify-helper always) ÷ floor, 1 session", "runbook, installed, --verify-helper always", "floor, 1 session/host")
		ratio("runbook (first contact) ÷ floor + upload", "runbook, first contact", "floor + SFTP upload, 1 session/host")
		ratio("runbook (installed) ÷ baseline (installed)", "runbook, helper installed", "baseline, helper installed")
		ratio("runbook (--verify-helper always) ÷ baseline", "runbook, installed, --verify-helper always", "baseline, installed, --verify-helper always")
		ratio("runbook (first contact) ÷ baseline (first contact)", "runbook, first contact", "baseline, first contact")
	}
}
