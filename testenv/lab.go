package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Options configure a lab.
type Options struct {
	Tier  TierName // TierNS (default) or TierSystemd
	Hosts int      // number of hosts (default 3)
	Dir   string   // lab directory; Start defaults it to a test temp dir
	// Subnet is the management subnet (a private IPv4 prefix). Empty: the
	// next free /24 of Pool.
	Subnet string
	// Pool to take subnets from; empty: $RUNBOOK_LAB_POOL or DefaultPool.
	Pool string
	// HostsPerSegment is how many hosts share one /24 segment (its own bridge
	// in the hub); 0 means MaxHostsPerSegment. A lab of more hosts spans
	// several /24s. Tests set it low to span segments with few hosts.
	HostsPerSegment int
	// Daemon, if set, is the command line of a detached process that serves
	// the forwarders (`testenv` re-executing itself), so they outlive Up's
	// caller. It inherits the listeners as fds 3.. and must call
	// ServeForwarders. Empty: forwarders run in this process until Down.
	Daemon []string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Layers names optional package layers (LayerLibvirt) every host of a
	// systemd-tier lab gets over the base tree, built once and cached.
	Layers []string
	// VMUserland is what vm-tier guests run: VMUserlandBusybox (default)
	// or VMUserlandSystemd (the systemd tier's base tree as root disk).
	VMUserland string
}

// Host is a lab host as a client sees it.
type Host struct {
	Name   string
	Port   int    // forwarder port on 127.0.0.1
	MgmtIP string // address inside the lab (reachable only from the lab)
}

// Lab is a running lab.
type Lab struct {
	Dir          string
	Tier         TierName
	Inventory    string // inventory.hcl
	InventoryINI string // inventory.ini
	KnownHosts   string
	Key          string // client private key
	SSHConfig    string
	Hosts        []Host

	mu      sync.Mutex
	down    bool // Down succeeded: the names may belong to another lab now
	st      *State
	tier    Tier
	logf    func(string, ...any)
	stopFwd func() // in-process forwarders
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func logfFor(w io.Writer) func(string, ...any) {
	if w == nil {
		return func(string, ...any) {}
	}
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "testenv: "+format+"\n", args...)
	}
}

// Up starts a lab in opts.Dir. Leftovers of an earlier lab in that directory
// are torn down first. On failure everything created so far is removed.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	if opts.Tier == "" {
		opts.Tier = TierNS
	}
	if opts.Hosts == 0 {
		opts.Hosts = 3
	}
	if opts.Hosts < 1 || opts.Hosts > MaxHosts {
		return nil, fmt.Errorf("lab needs 1 to %d hosts, got %d", MaxHosts, opts.Hosts)
	}
	per, err := hostsPerSegment(opts.HostsPerSegment)
	if err != nil {
		return nil, err
	}
	if opts.Subnet != "" {
		// A subnet too small for the hosts is refused before anything is made.
		p, err := checkSubnet(opts.Subnet)
		if err != nil {
			return nil, err
		}
		if _, err := planSegments(p, "", opts.Hosts, per); err != nil {
			return nil, err
		}
	}
	if opts.Dir == "" {
		return nil, errors.New("lab directory not set")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("lab directory: %w", err)
	}
	// Paths end up in overlayfs mount options, where these characters are separators.
	if strings.ContainsAny(dir, ",:= \t\n") {
		return nil, fmt.Errorf("lab directory %q: must not contain ',', ':', '=' or spaces", dir)
	}
	tier, err := tierFor(opts.Tier)
	if err != nil {
		return nil, err
	}
	if err := checkLayers(opts.Tier, opts.Layers); err != nil {
		return nil, err
	}
	if err := checkVMUserland(opts.Tier, opts.VMUserland, opts.Layers); err != nil {
		return nil, err
	}
	if err := tier.Check(); err != nil {
		return nil, err
	}
	logf := logfFor(opts.Log)
	if err := checkPids(opts.Hosts, logf); err != nil {
		return nil, err
	}
	// The forwarders run in this process until a daemon takes them over;
	// the daemon checks its own limit again.
	if before, after, err := ensureNofile(ForwarderFDs(opts.Hosts)); err != nil {
		return nil, err
	} else if before != after {
		logf("RLIMIT_NOFILE raised from %s to %s: the forwarder of %d hosts needs about %d", before, after, opts.Hosts, ForwarderFDs(opts.Hosts))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab directory: %w", err)
	}
	if _, err := loadState(dir); err == nil {
		logf("tearing down the previous lab in %s", dir)
		if err := Down(ctx, dir, opts.Log); err != nil {
			return nil, fmt.Errorf("previous lab in %s: %w", dir, err)
		}
	}

	self, err := procOf(os.Getpid())
	if err != nil {
		return nil, err
	}
	st := &State{Version: stateVersion, ID: newID(), Dir: dir, Tier: opts.Tier, Created: time.Now().UTC(), Owner: self,
		Layers: opts.Layers, VMUserland: opts.VMUserland}
	if err := allocate(ctx, st, opts.Subnet, opts.Pool, blockBits(opts.Hosts, per), logf); err != nil {
		return nil, err
	}
	lab := &Lab{st: st, tier: tier, logf: logf}
	if err := lab.up(ctx, opts); err != nil {
		// Tear down with a fresh context: ctx may be what just expired.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if derr := lab.Down(dctx); derr != nil {
			err = fmt.Errorf("%w (and teardown: %v)", err, derr)
		}
		return nil, err
	}
	return lab, nil
}

func (l *Lab) up(ctx context.Context, opts Options) error {
	st := l.st
	t0 := time.Now()
	phase := func(what string) {
		l.logf("%s: %.2fs", what, time.Since(t0).Seconds())
		t0 = time.Now()
	}
	if err := planNetwork(st, opts.Hosts, opts.HostsPerSegment); err != nil {
		return err
	}
	if err := st.save(); err != nil {
		return err
	}
	if err := l.tier.Prepare(ctx, st, l.logf); err != nil {
		return err
	}
	if err := raiseNeighLimits(ctx, st, l.logf); err != nil {
		return err
	}
	if err := setupNetwork(ctx, st); err != nil {
		return err
	}
	phase(fmt.Sprintf("network of %d hosts in %d segment(s)", len(st.Hosts), len(st.segments())))
	pub, err := writeKey(st.Dir)
	if err != nil {
		return err
	}
	if err := l.tier.Start(ctx, st, pub, l.logf); err != nil {
		return err
	}
	phase("hosts started")
	lns, err := listenLoopback(len(st.Hosts))
	if err != nil {
		return err
	}
	for i, h := range st.Hosts {
		h.Port = lns[i].Addr().(*net.TCPAddr).Port
	}
	if err := st.save(); err != nil {
		closeAll(lns)
		return err
	}
	if len(opts.Daemon) > 0 {
		err = l.startDaemon(opts.Daemon, lns)
	} else {
		err = l.startInProcess(lns)
	}
	if err != nil {
		return err
	}
	if err := writeClientFiles(st); err != nil {
		return err
	}
	// End to end: 127.0.0.1 port -> forwarder -> hub -> bridge -> sshd.
	if err := l.waitSSH(ctx); err != nil {
		return err
	}
	phase("every host answers ssh through its forwarder")
	l.fill()
	return st.save()
}

func closeAll(lns []net.Listener) {
	for _, l := range lns {
		l.Close()
	}
}

func (l *Lab) startInProcess(lns []net.Listener) error {
	fw, err := newForwarder(l.st, lns, log.New(io.Discard, "", 0))
	if err != nil {
		closeAll(lns)
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		fw.serve(ctx)
		close(done)
	}()
	l.stopFwd = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	return nil
}

// startDaemon hands the listeners to a detached forwarder process. It becomes
// the lab's owner: while it lives, the lab is in use.
func (l *Lab) startDaemon(argv []string, lns []net.Listener) error {
	defer closeAll(lns) // the daemon has its own copies
	var files []*os.File
	for _, ln := range lns {
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			return fmt.Errorf("forwarder daemon: %w", err)
		}
		defer f.Close()
		files = append(files, f)
	}
	logFile, err := os.OpenFile(filepath.Join(l.st.Dir, fileForwardLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("forwarder daemon: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("forwarder daemon: %w", err)
	}
	p, err := procOf(cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("forwarder daemon exited at once: %w", err)
	}
	_ = cmd.Process.Release()
	l.st.Forwarder, l.st.Owner = p, p
	return l.st.save()
}

// ServeForwarders is the forwarder daemon's body: it serves the lab in dir
// with the listeners inherited as fds 3.. until ctx ends.
func ServeForwarders(ctx context.Context, dir string) error {
	st, err := loadState(dir)
	if err != nil {
		return err
	}
	var lns []net.Listener
	for i := range st.Hosts {
		f := os.NewFile(uintptr(3+i), "listener")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			closeAll(lns)
			return fmt.Errorf("inherited listener %d: %w", i, err)
		}
		lns = append(lns, ln)
	}
	logger := log.New(os.Stderr, "forwarder: ", log.LstdFlags)
	before, after, err := ensureNofile(ForwarderFDs(len(st.Hosts)))
	if err != nil {
		closeAll(lns)
		return err
	}
	logger.Printf("RLIMIT_NOFILE %s (was %s); %d hosts need about %d", after, before, len(st.Hosts), ForwarderFDs(len(st.Hosts)))
	fw, err := newForwarder(st, lns, logger)
	if err != nil {
		closeAll(lns)
		return err
	}
	logger.Printf("serving %d hosts of %s", len(lns), dir)
	fw.serve(ctx)
	logger.Printf("stopped")
	return nil
}

// sshCheckParallel bounds the banner checks in flight at once: each makes
// the host's sshd fork, and a thousand at once only thrash the machine.
const sshCheckParallel = 64

// waitSSHTimeout is how long up waits for every host to answer: a minute,
// and more for large labs, whose checks queue behind each other.
func waitSSHTimeout(hosts int) time.Duration {
	return 60*time.Second + time.Duration(hosts)*60*time.Millisecond
}

func (l *Lab) waitSSH(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, waitSSHTimeout(len(l.st.Hosts)))
	defer cancel()
	errs := make([]error, len(l.st.Hosts))
	forEachLimited(len(l.st.Hosts), sshCheckParallel, func(i int) {
		h := l.st.Hosts[i]
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port))
		var last error
		err := pollUntil(wctx, 50*time.Millisecond, func() (bool, error) {
			last = readBanner(wctx, dialLoopback, addr)
			return last == nil, nil
		})
		if err != nil {
			errs[i] = fmt.Errorf("host %s: sshd not reachable at %s: %v", h.Name, addr, last)
		}
	})
	return joinErrs(errs)
}

// forEachLimited calls f(0..n-1) with at most par calls running at once.
func forEachLimited(n, par int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// fill sets the exported fields from the state.
func (l *Lab) fill() {
	st := l.st
	l.Dir, l.Tier = st.Dir, st.Tier
	l.Inventory = filepath.Join(st.Dir, fileInventory)
	l.InventoryINI = filepath.Join(st.Dir, fileInventoryINI)
	l.KnownHosts = filepath.Join(st.Dir, fileKnownHosts)
	l.Key = filepath.Join(st.Dir, fileKey)
	l.SSHConfig = filepath.Join(st.Dir, fileSSHConfig)
	l.Hosts = nil
	for _, h := range st.Hosts {
		l.Hosts = append(l.Hosts, Host{Name: h.Name, Port: h.Port, MgmtIP: h.MgmtIP})
	}
}

// Open attaches to the lab running in dir (for the CLI's other commands).
func Open(dir string) (*Lab, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := loadState(dir)
	if err != nil {
		return nil, err
	}
	tier, err := tierFor(st.Tier)
	if err != nil {
		return nil, err
	}
	l := &Lab{st: st, tier: tier, logf: func(string, ...any) {}}
	l.fill()
	return l, nil
}

// Down tears down the lab of this handle.
func (l *Lab) Down(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil
	}
	if l.stopFwd != nil {
		l.stopFwd()
		l.stopFwd = nil
	}
	if err := teardown(ctx, l.st, l.logf); err != nil {
		// Keep the registry record: until a later Down or reclaim finishes
		// the job, this lab's names and subnet must not be handed out again.
		return err
	}
	if err := release(ctx, l.st, l.logf); err != nil {
		return err
	}
	t0 := time.Now()
	removeLabFiles(l.st.Dir)
	l.logf("lab files removed: %.2fs", time.Since(t0).Seconds())
	l.down = true
	return nil
}

// Down tears down whatever lab state dir records; a dir without a lab is not
// an error.
func Down(ctx context.Context, dir string, logw io.Writer) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	st, err := loadState(dir)
	if errors.Is(err, errNoLab) {
		return nil
	}
	if err != nil {
		return err
	}
	l := &Lab{st: st, logf: logfFor(logw)}
	return l.Down(ctx)
}

// teardown removes every process, namespace, cgroup, mount and route st
// records. It does not touch the registry. Each step runs even if an earlier
// one failed, so a second Down can finish what the first could not.
func teardown(ctx context.Context, st *State, logf func(string, ...any)) error {
	var errs []error
	t0 := time.Now()
	// Forwarder daemon first: no new connections into a dying lab.
	if st.Forwarder.PID != 0 {
		if err := stopProcs(ctx, []Proc{st.Forwarder}, syscall.SIGTERM, 5*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("forwarder: %w", err))
		}
	}
	if tier, err := tierFor(st.Tier); err == nil {
		if err := tier.Stop(ctx, st); err != nil {
			errs = append(errs, err)
		}
	}
	// Then everything still inside the lab's namespaces or cgroups, whatever
	// started it (sessions, commands run by tests, daemons started by modules).
	var cgs []string
	var mains []Proc
	for _, h := range st.Hosts {
		cgs = append(cgs, h.Cgroups...)
		mains = append(mains, h.Main, h.Leader)
	}
	procs := append(procsInNetns(labNetnsInodes(st)), procsInCgroups(cgs)...)
	procs = uniqueProcs(append(procs, mains...))
	if err := stopProcs(ctx, procs, syscall.SIGKILL, 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	logf("%d processes stopped: %.2fs", len(procs), time.Since(t0).Seconds())
	t0 = time.Now()
	if tier, err := tierFor(st.Tier); err == nil {
		if err := tier.Cleanup(ctx, st); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeNetwork(ctx, st); err != nil {
		errs = append(errs, err)
	}
	logf("%d namespaces and the guard route removed: %.2fs", len(st.Namespaces), time.Since(t0).Seconds())
	if err := unmountUnder(st.Dir); err != nil {
		errs = append(errs, err)
	}
	if err := joinErrs(errs); err != nil {
		return fmt.Errorf("teardown of lab %s: %w", st.Dir, err)
	}
	logf("lab %s is down", st.Dir)
	return nil
}

// uniqueProcs drops repeated entries (an anchor is both recorded and found in
// its namespace) and never-started ones.
func uniqueProcs(procs []Proc) []Proc {
	seen := map[Proc]bool{}
	out := procs[:0:0]
	for _, p := range procs {
		if p.PID > 0 && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// unmountUnder detaches any mount point below dir that is visible here (the
// lab mounts inside private mount namespaces, so normally there is none).
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var errs []error
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- { // deepest (latest) first
		f := strings.Fields(lines[i])
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if strings.HasPrefix(mp, dir+"/") {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
			}
		}
	}
	return joinErrs(errs)
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// removeLabFiles deletes what the lab wrote into dir, state last, and the dir
// itself if that leaves it empty.
func removeLabFiles(dir string) {
	// The hosts' directories first, a few at a time: on this machine's ext4
	// every unlink costs about half a millisecond of CPU, and a host has a
	// few dozen files.
	hosts := filepath.Join(dir, "hosts")
	if ents, err := os.ReadDir(hosts); err == nil {
		forEachLimited(len(ents), 4, func(i int) { _ = os.RemoveAll(filepath.Join(hosts, ents[i].Name())) })
	}
	for _, f := range labFiles {
		_ = os.RemoveAll(filepath.Join(dir, f))
	}
	_ = os.Remove(filepath.Join(dir, stateFile))
	_ = os.Remove(dir) // fails, harmlessly, if the user keeps other files there
}

func (l *Lab) host(name string) (*HostState, error) { return l.st.host(name) }

// Exec runs argv inside host (its namespaces, as root, with a clean
// environment) and returns stdout. A non-zero exit returns an error wrapping
// *exec.ExitError with stderr included.
func (l *Lab) Exec(ctx context.Context, host string, argv ...string) ([]byte, error) {
	cmd, err := l.Command(ctx, host, argv...)
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %s: %w: %s", host, strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Command returns an unstarted command that runs argv inside host, for
// callers that want their own stdio (the CLI's exec).
func (l *Lab) Command(ctx context.Context, host string, argv ...string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("exec: no command")
	}
	h, err := l.host(host)
	if err != nil {
		return nil, err
	}
	full, err := l.tier.Command(l.st, h, argv)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.WaitDelay = 2 * time.Second
	return cmd, nil
}

// netemDelay and netemLoss are what "slow" puts on a link.
const (
	netemDelay = 150 * time.Millisecond
	netemLoss  = "2%"
)

// Break injects a fault into host: BreakStop stops its sshd, BreakSlow adds
// latency and loss to its management link, BreakDrop cuts that link, BreakFreeze
// freezes a vm-tier host.
func (l *Lab) Break(host string, mode BreakMode) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := l.host(host)
	if err != nil {
		return err
	}
	switch mode {
	case BreakStop:
		err = l.tier.StopSSH(ctx, l.st, h)
	case BreakSlow:
		err = l.slow(ctx, h)
	case BreakDrop:
		_, err = runCmd(ctx, "", "ip", "-n", l.st.HubNS, "link", "set", h.HubIf, "down")
	case BreakFreeze:
		f, ok := l.tier.(freezer)
		if !ok {
			return fmt.Errorf("break %s freeze: the %s tier cannot freeze a host (the vm tier can)", host, l.st.Tier)
		}
		err = f.Freeze(ctx, l.st, h)
	default:
		return fmt.Errorf("unknown break mode %q (want stop, slow, drop or freeze)", mode)
	}
	if err != nil {
		return fmt.Errorf("break %s %s: %w", host, mode, err)
	}
	h.Broken = mode
	return l.st.save()
}

// slow puts netem on both ends of the host's management link. Kernels built
// without sch_netem get the same latency from the forwarder instead (only
// traffic through the forwarder is slowed then).
func (l *Lab) slow(ctx context.Context, h *HostState) error {
	ms := strconv.Itoa(int(netemDelay / time.Millisecond))
	netem := []string{"root", "netem", "delay", ms + "ms", "loss", netemLoss}
	_, err := runCmd(ctx, "", "tc", append([]string{"-n", l.st.HubNS, "qdisc", "replace", "dev", h.HubIf}, netem...)...)
	if err == nil {
		_, err = runCmd(ctx, "", "nsenter", append([]string{"--net=" + l.tier.NetnsPath(l.st, h), "--",
			"tc", "qdisc", "replace", "dev", mgmtNIC}, netem...)...)
		if err != nil {
			return err
		}
		h.SlowVia = "netem"
		return nil
	}
	if !strings.Contains(err.Error(), "unknown") {
		return err
	}
	if err := writeFile(filepath.Join(l.st.hostDir(h), impairFile), []byte(ms+"\n"), 0o644); err != nil {
		return err
	}
	if err := bumpImpairGen(l.st); err != nil {
		return err
	}
	h.SlowVia = "forwarder"
	time.Sleep(250 * time.Millisecond) // the forwarder polls the file every 100 ms
	return nil
}

// Heal undoes every fault Break can inject on host. On the vm tier it also brings the
// host's management NIC back (up, address, default route) after a task took it down.
func (l *Lab) Heal(host string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := l.host(host)
	if err != nil {
		return err
	}
	var errs []error
	// A frozen guest first: everything below goes through it.
	if f, ok := l.tier.(freezer); ok && (h.Broken == BreakFreeze || exists(vmQMPSocket(l.st, h))) {
		if err := f.Thaw(ctx, l.st, h); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := runCmd(ctx, "", "ip", "-n", l.st.HubNS, "link", "set", h.HubIf, "up"); err != nil {
		errs = append(errs, err)
	}
	if r, ok := l.tier.(mgmtRestorer); ok {
		if err := r.RestoreMgmt(ctx, l.st, h); err != nil {
			errs = append(errs, err)
		}
	}
	if h.SlowVia == "netem" {
		_, _ = runCmd(ctx, "", "tc", "-n", l.st.HubNS, "qdisc", "del", "dev", h.HubIf, "root")
		_, _ = runCmd(ctx, "", "nsenter", "--net="+l.tier.NetnsPath(l.st, h), "--", "tc", "qdisc", "del", "dev", mgmtNIC, "root")
	}
	if exists(filepath.Join(l.st.hostDir(h), impairFile)) {
		_ = os.Remove(filepath.Join(l.st.hostDir(h), impairFile))
		if err := bumpImpairGen(l.st); err != nil {
			errs = append(errs, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := l.tier.StartSSH(ctx, l.st, h); err != nil {
		errs = append(errs, err)
	}
	if err := joinErrs(errs); err != nil {
		return fmt.Errorf("heal %s: %w", host, err)
	}
	h.Broken, h.SlowVia = "", ""
	return l.st.save()
}

// Reboot resets a vm-tier host as a power cycle would and waits (at most 5 minutes) until
// its control channel answers again. A test reading the host's state after a reboot waits
// for what it needs itself (systemctl is-system-running --wait).
func (l *Lab) Reboot(host string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bootID := func(ctx context.Context) (string, error) {
		out, err := l.Exec(ctx, host, "cat", "/proc/sys/kernel/random/boot_id")
		return strings.TrimSpace(string(out)), err
	}
	before, err := bootID(ctx)
	if err != nil {
		return fmt.Errorf("reboot %s: %w", host, err)
	}
	l.mu.Lock()
	h, err := l.host(host)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	r, ok := l.tier.(rebooter)
	if !ok {
		l.mu.Unlock()
		return fmt.Errorf("reboot %s: the %s tier cannot reboot a host (the vm tier can)", host, l.st.Tier)
	}
	err = r.Reboot(ctx, l.st, h)
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("reboot %s: %w", host, err)
	}
	// Until the host answers with another boot id (a control connection made before the
	// reset might still answer for the old boot).
	var last error
	for ctx.Err() == nil {
		actx, acancel := context.WithTimeout(ctx, 20*time.Second)
		id, err := bootID(actx)
		acancel()
		if err == nil && id != before && id != "" {
			return nil
		}
		if last = err; err == nil {
			last = errors.New("the boot id has not changed")
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("reboot %s: the host did not come back: %v", host, last)
}

// HostStatus is one line of Status.
type HostStatus struct {
	Host
	Running bool      // the host's processes are alive
	SSH     bool      // sshd answered through the forwarder
	Broken  BreakMode // active fault
}

// Status checks every host (sshCheckParallel at a time, so a large lab's
// status takes seconds, not one banner round trip per host in turn).
func (l *Lab) Status(ctx context.Context) []HostStatus {
	out := make([]HostStatus, len(l.st.Hosts))
	forEachLimited(len(l.st.Hosts), sshCheckParallel, func(i int) {
		h := l.st.Hosts[i]
		s := HostStatus{Host: Host{Name: h.Name, Port: h.Port, MgmtIP: h.MgmtIP}, Broken: h.Broken}
		s.Running = h.Main.Alive() && (l.st.Tier != TierSystemd || h.Leader.Alive())
		s.SSH = readBanner(ctx, dialLoopback, net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port))) == nil
		out[i] = s
	})
	return out
}

// Subnet is the lab's management subnet.
func (l *Lab) Subnet() string { return l.st.Subnet }

// Segments are the lab's /24 segments (one for a lab of up to
// MaxHostsPerSegment hosts).
func (l *Lab) Segments() []Segment { return append([]Segment(nil), l.st.segments()...) }

// Prefix is the lab-unique prefix of its namespace and interface names.
func (l *Lab) Prefix() string { return l.st.Prefix }

// Namespaces lists the lab's named network namespaces.
func (l *Lab) Namespaces() []string { return append([]string(nil), l.st.Namespaces...) }

// Processes lists the lab's processes now: the recorded ones (anchors,
// nspawn, container init, forwarder daemon) and every process inside the
// lab's namespaces. Tests take it before Down to check teardown with Leftovers.
func (l *Lab) Processes() []Proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	var procs []Proc
	for _, p := range []Proc{st.Forwarder} {
		if p.Alive() {
			procs = append(procs, p)
		}
	}
	for _, h := range st.Hosts {
		for _, p := range []Proc{h.Main, h.Leader} {
			if p.Alive() {
				procs = append(procs, p)
			}
		}
	}
	return append(procs, procsInNetns(labNetnsInodes(st))...)
}

// Leftovers lists what of the lab still exists on the machine: namespaces,
// interfaces named with its prefix in the root namespace, the guard route,
// mounts under its directory, cgroups, its registry record, its count in the
// neighbour limits' book and any of procs still running. After a successful
// Down it must be empty.
func (l *Lab) Leftovers(procs []Proc) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	var out []string
	for _, ns := range st.Namespaces {
		if exists(netnsPath(ns)) {
			out = append(out, "netns "+ns)
		}
	}
	if links, err := runCmd(context.Background(), "", "ip", "-o", "link", "show"); err == nil {
		for _, line := range strings.Split(string(links), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], st.Prefix) {
				out = append(out, "interface "+strings.TrimSuffix(f[1], ":"))
			}
		}
	}
	if r, err := runCmd(context.Background(), "", "ip", "-4", "route", "show", "type", "unreachable", st.Subnet); err == nil && strings.TrimSpace(string(r)) != "" {
		out = append(out, "route unreachable "+st.Subnet)
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(unescapeMount(f[4]), st.Dir+"/") {
				out = append(out, "mount "+f[4])
			}
		}
	}
	for _, h := range st.Hosts {
		for _, cg := range h.Cgroups {
			if exists(cg) {
				out = append(out, "cgroup "+cg)
			}
		}
	}
	if b, err := os.ReadFile(slotPath(st.Slot)); err == nil && strings.Contains(string(b), st.ID) {
		out = append(out, "registry record "+slotPath(st.Slot))
	}
	if b, err := loadNeighBook(); err == nil {
		if _, ok := b.Labs[st.ID]; ok {
			out = append(out, "neighbour limits still counted for the lab in "+neighBookPath())
		}
	}
	for _, p := range procs {
		if p.Alive() {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.PID))
			out = append(out, fmt.Sprintf("process %d (%s)", p.PID, strings.TrimSpace(string(comm))))
		}
	}
	if exists(filepath.Join(st.Dir, stateFile)) {
		out = append(out, "state file "+filepath.Join(st.Dir, stateFile))
	}
	return out
}
