package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func init() { registerTier(systemdTier{}) }

// systemdTier boots each host as a systemd-nspawn container from the shared,
// read-only base tree (under the lab's optional layers) with a per-host overlay. The overlay is mounted in a
// private mount namespace that dies with nspawn, so it can never outlive the
// host. The container runs in the netns the lab prepared for the host.
type systemdTier struct{}

func (systemdTier) Name() TierName { return TierSystemd }

func (systemdTier) Check() error {
	bins := []string{"systemd-nspawn"}
	if !exists(filepath.Join(filepath.Dir(BaseTreePath()), "complete")) {
		bins = append(bins, "debootstrap")
	}
	missing := baseCheck(bins...)
	if b, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(b), "overlay") {
		missing = append(missing, "kernel has no overlay filesystem")
	}
	if len(cgroupRoots()) == 0 {
		missing = append(missing, "no usable cgroup hierarchy under /sys/fs/cgroup")
	}
	if len(missing) > 0 {
		return &PrereqError{Tier: TierSystemd, Missing: missing}
	}
	return nil
}

func (systemdTier) Prepare(ctx context.Context, st *State, logf func(string, ...any)) error {
	base, err := ensureBase(ctx, logf)
	if err != nil {
		return err
	}
	st.BaseTree = base
	if len(st.Layers) > 0 {
		if st.LayerTrees, err = EnsureLayers(ctx, st.Layers, logf); err != nil {
			return err
		}
	}
	// Each container's systemd, journald, logind... take inotify instances;
	// the usual limit of 128 per user runs out at about 15 containers.
	raised, err := raiseInotify(4096)
	if err != nil {
		return err
	}
	st.InotifyRaised = raised
	return st.save()
}

// nspawnScript moves itself into the host's own cgroups (nspawn, not run by a
// systemd on this machine, otherwise puts every container in the same
// "payload" cgroup), mounts the overlay root and execs nspawn inside the
// host's staging netns. nspawn moves the host's NICs from there into the
// container's own netns: only a private network gets the container its own
// sysfs (/sys/class/net) and CAP_NET_ADMIN, which NetworkManager and
// firewalld need. The container's ifupdown configures eth0 at boot.
const nspawnScript = `set -eu
lower=$1 h=$2 machine=$3 ns=$4 name=$5
shift 5
for cg in "$@"; do mkdir -p "$cg"; echo $$ > "$cg/cgroup.procs"; done
mount -t overlay lab-root -o "lowerdir=$lower,upperdir=$h/upper,workdir=$h/work" "$h/root"
# nspawn wants udev to have seen an interface before moving it, unless /sys is
# read-only; udev never sees the lab's veths, so make /sys read-only here
# (this mount namespace only; cgroup mounts below /sys stay writable).
mount -o remount,bind,ro /sys
exec nsenter --net="/run/netns/$ns" -- systemd-nspawn --quiet --register=no --keep-unit \
  --console=passive --resolv-conf=off --link-journal=no --timezone=off \
  -D "$h/root" -M "$machine" --hostname="$name" \
  --network-interface=eth0 --network-interface=ens1f0 --network-interface=ens1f1 -b
`

func (t systemdTier) Start(ctx context.Context, st *State, clientKey string, logf func(string, ...any)) error {
	for _, h := range st.Hosts {
		dir := st.hostDir(h)
		upper := filepath.Join(dir, "upper")
		if err := mkdirs(0o755, upper, filepath.Join(dir, "work"), filepath.Join(dir, "root"),
			filepath.Join(upper, "etc", "ssh")); err != nil {
			return fmt.Errorf("prepare %s: %w", h.Name, err)
		}
		if err := writeHostIdentity(filepath.Join(upper, "etc"), h, st); err != nil {
			return fmt.Errorf("prepare %s: %w", h.Name, err)
		}
		if err := writeFile(filepath.Join(upper, "etc", "network", "interfaces"), []byte(ifupdownConfig(st, h)), 0o644); err != nil {
			return fmt.Errorf("prepare %s: %w", h.Name, err)
		}
		if err := mkdirs(0o700, filepath.Join(upper, "root")); err != nil {
			return err
		}
		if err := writeRootHome(filepath.Join(upper, "root"), clientKey); err != nil {
			return fmt.Errorf("prepare %s: %w", h.Name, err)
		}
		h.Cgroups = nil
		for _, r := range cgroupRoots() {
			h.Cgroups = append(h.Cgroups, filepath.Join(r, h.NetNS))
		}
	}
	if err := st.save(); err != nil {
		return err
	}
	for _, h := range st.Hosts {
		dir := st.hostDir(h)
		logFile, err := os.OpenFile(filepath.Join(dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("start %s: %w", h.Name, err)
		}
		args := []string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c", nspawnScript, "sh",
			st.lowerDirs(), dir, h.NetNS, h.NetNS, h.Name}
		cmd := exec.Command("unshare", append(args, h.Cgroups...)...)
		cmd.Env = cleanEnv()
		if err := startHostProcess(h, cmd, logFile); err != nil {
			return err
		}
	}
	if err := st.save(); err != nil {
		return err
	}
	for _, h := range st.Hosts {
		if err := t.findLeader(ctx, st, h); err != nil {
			return err
		}
	}
	if err := st.save(); err != nil {
		return err
	}
	// Boot all in parallel; under load a container may come up "degraded"
	// because of some unrelated unit, which is fine for the lab.
	var wg sync.WaitGroup
	errs := make([]error, len(st.Hosts))
	for i, h := range st.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = t.waitBooted(ctx, st, h)
		}()
	}
	wg.Wait()
	return joinErrs(errs)
}

// findLeader finds the container's PID 1: the child of nspawn that lives in
// another PID namespace.
func (systemdTier) findLeader(ctx context.Context, st *State, h *HostState) error {
	self, _ := os.Readlink("/proc/self/ns/pid")
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := pollUntil(wctx, 20*time.Millisecond, func() (bool, error) {
		if !h.Main.Alive() {
			log, _ := os.ReadFile(filepath.Join(st.hostDir(h), "console.log"))
			return false, fmt.Errorf("host %s: nspawn exited: %s", h.Name, tail(strings.TrimSpace(string(log)), 2000))
		}
		for _, c := range children(h.Main.PID) {
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", c))
			if err == nil && ns != self {
				p, err := procOf(c)
				if err == nil {
					h.Leader = p
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("host %s: container init not found: %w", h.Name, err)
	}
	return nil
}

func (t systemdTier) waitBooted(ctx context.Context, st *State, h *HostState) error {
	bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	argv, err := t.Command(st, h, []string{"systemctl", "is-system-running", "--wait"})
	if err != nil {
		return err
	}
	// Right after start the container's systemd may not accept connections
	// yet (it then says "offline" or nothing): retry until a final state.
	var last string
	err = pollUntil(bctx, 200*time.Millisecond, func() (bool, error) {
		cmd := exec.CommandContext(bctx, argv[0], argv[1:]...)
		cmd.WaitDelay = time.Second
		out, _ := cmd.Output()
		last = strings.TrimSpace(string(out))
		switch last {
		case "running", "degraded":
			return true, nil
		case "maintenance", "stopping":
			return false, fmt.Errorf("host %s: system is %s", h.Name, last)
		}
		if !h.Leader.Alive() {
			return false, fmt.Errorf("host %s: container stopped during boot", h.Name)
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("host %s boot (last state %q): %w", h.Name, last, err)
	}
	return nil
}

// lowerDirs is the overlay lowerdir option of every host: the layers, top
// first, over the base tree.
func (st *State) lowerDirs() string {
	dirs := []string{st.BaseTree}
	for _, l := range st.LayerTrees {
		dirs = append([]string{l}, dirs...)
	}
	return strings.Join(dirs, ":")
}

// children lists the child PIDs of pid (all its threads).
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// Stop kills each container's PID 1, which ends every process of the
// container at once (a clean shutdown buys nothing: the overlay is thrown
// away), then waits for nspawn to clean up and exit.
func (systemdTier) Stop(ctx context.Context, st *State) error {
	var mains []Proc
	for _, h := range st.Hosts {
		h.Leader.Signal(syscall.SIGKILL)
		mains = append(mains, h.Main)
	}
	if waitGone(ctx, mains, 10*time.Second) {
		return nil
	}
	return stopProcs(ctx, mains, syscall.SIGTERM, 5*time.Second)
}

func (systemdTier) Cleanup(ctx context.Context, st *State) error {
	var errs []error
	for _, h := range st.Hosts {
		for _, cg := range h.Cgroups {
			if err := removeCgroup(ctx, cg); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return joinErrs(errs)
}

func (systemdTier) Command(st *State, h *HostState, argv []string) ([]string, error) {
	if !h.Leader.Alive() {
		return nil, fmt.Errorf("host %s is not running", h.Name)
	}
	args := []string{"nsenter", "-t", strconv.Itoa(h.Leader.PID),
		"--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--root", "--wd", "--"}
	return append(append(args, hostEnv()...), argv...), nil
}

func (t systemdTier) StopSSH(ctx context.Context, st *State, h *HostState) error {
	return t.systemctl(ctx, st, h, "stop", "ssh.service")
}

func (t systemdTier) StartSSH(ctx context.Context, st *State, h *HostState) error {
	return t.systemctl(ctx, st, h, "start", "ssh.service")
}

func (t systemdTier) systemctl(ctx context.Context, st *State, h *HostState, args ...string) error {
	argv, err := t.Command(st, h, append([]string{"systemctl"}, args...))
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := runCmd(cctx, "", argv[0], argv[1:]...); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return nil
}

// cgroupRoots are the hierarchies nspawn uses: the unified one on a pure
// cgroup v2 machine, or name=systemd plus unified on a hybrid one.
func cgroupRoots() []string {
	if exists("/sys/fs/cgroup/cgroup.controllers") {
		return []string{"/sys/fs/cgroup"}
	}
	var out []string
	for _, r := range []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"} {
		if exists(filepath.Join(r, "cgroup.procs")) {
			out = append(out, r)
		}
	}
	return out
}

// cgroupDirs lists dir and its sub-cgroups, deepest first.
func cgroupDirs(dir string) []string {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

func procsInCgroups(cgs []string) []Proc {
	var out []Proc
	for _, cg := range cgs {
		for _, d := range cgroupDirs(cg) {
			b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					if p, err := procOf(pid); err == nil {
						out = append(out, p)
					}
				}
			}
		}
	}
	return out
}

// removeCgroup removes a cgroup tree; the kernel refuses (EBUSY) until the
// last process has fully exited, so retry for a while.
func removeCgroup(ctx context.Context, dir string) error {
	if !exists(dir) {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var last error
	err := pollUntil(rctx, 50*time.Millisecond, func() (bool, error) {
		last = nil
		for _, d := range cgroupDirs(dir) {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				last = err
			}
		}
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %v (%w)", dir, last, err)
	}
	return nil
}

// ifupdownConfig is the host's /etc/network/interfaces: the management
// address on eth0, as the classic Debian "networking" service sets it up.
func ifupdownConfig(st *State, h *HostState) string {
	gw, plen := st.hostNet(h)
	return fmt.Sprintf(`# interfaces(5) file used by ifup(8) and ifdown(8)
auto lo
iface lo inet loopback

# Lab management link (NetworkManager leaves it alone).
auto %s
iface %s inet static
    address %s/%d
    gateway %s

source /etc/network/interfaces.d/*
`, mgmtNIC, mgmtNIC, h.MgmtIP, plen, gw)
}

// NetnsPath is the container's own network namespace.
func (systemdTier) NetnsPath(st *State, h *HostState) string {
	return fmt.Sprintf("/proc/%d/ns/net", h.Leader.PID)
}
