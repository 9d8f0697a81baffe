package testenv

import (
	"context"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func init() { registerTier(nsTier{}) }

// nsTier makes each host from namespaces: the lab's netns, plus a mount
// namespace with private /etc, /var (overlays on the machine's), /root, /tmp,
// /run, and a UTS namespace for the hostname. An anchor process (sleep) holds
// the namespaces so sshd can be stopped and started again.
type nsTier struct{}

func (nsTier) Name() TierName { return TierNS }

func (nsTier) Check() error {
	missing := baseCheck("sshd", "sleep")
	if b, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(b), "overlay") {
		missing = append(missing, "kernel has no overlay filesystem")
	}
	if len(missing) > 0 {
		return &PrereqError{Tier: TierNS, Missing: missing}
	}
	return nil
}

func (nsTier) Prepare(context.Context, *State, func(string, ...any)) error { return nil }

// nsHostScript runs inside the host's fresh mount and UTS namespaces. One
// mount(8) mounts the host's private directories from its own fstab
// (nsFstab), in order, and the hostname is written, not set by hostname(1):
// starting a thousand hosts is mostly process starts, so each host pays for
// as few as it can.
const nsHostScript = `set -eu
H=$1
# The new mount namespace is a copy of the machine's, with every namespace
# file of /run/netns (a mount each, a thousand in a large lab, each holding its
# namespace): drop them before /run is covered. ip made /run/netns a mount
# point when it made this lab's namespaces; if it is not one, there is
# nothing to drop.
umount -l /run/netns 2>/dev/null || :
mount --fstab "$H/fstab" --all
mkdir -p /run/sshd /var/log
echo "$2" > /proc/sys/kernel/hostname
/usr/sbin/sshd -E /var/log/sshd.log
exec sleep infinity
`

// nsFstab lists the mounts that make a host's private directories, mounted in
// this order: the bind of /root first and the tmpfs on /tmp last, because the
// lab dir (holding the upper dirs) may itself live under /var or /tmp. A
// sysfs mounted from inside the host's netns shows its own NICs. The lab dir
// has no spaces, commas, colons or '=' (Up refuses them), so the fields
// need no escaping.
func nsFstab(dir string) string {
	return fmt.Sprintf(`# Mounts of this lab host, written by testenv: mount --fstab THIS --all
%[1]s/root /root none bind 0 0
lab-etc /etc overlay lowerdir=/etc,upperdir=%[1]s/etc/upper,workdir=%[1]s/etc/work 0 0
lab-var /var overlay lowerdir=/var,upperdir=%[1]s/var/upper,workdir=%[1]s/var/work 0 0
lab-tmp /tmp tmpfs mode=1777,size=512m 0 0
lab-run /run tmpfs mode=755,size=64m 0 0
lab-sys /sys sysfs defaults 0 0
`, dir)
}

// sshdConfigNS replaces the machine's sshd_config inside the host.
const sshdConfigNS = `# Lab host sshd configuration, written by testenv.
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
UseDNS no
PrintMotd no
X11Forwarding no
AcceptEnv LANG LC_*
# Scale tests open many connections at once.
MaxStartups 200:30:400
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
`

func (t nsTier) Start(ctx context.Context, st *State, clientKey string, logf func(string, ...any)) error {
	t0 := time.Now()
	// Each host writes only its own directory: a few at a time, so that a
	// large lab's files are not written one host after another.
	errs := make([]error, len(st.Hosts))
	forEachLimited(len(st.Hosts), 8, func(i int) {
		if err := t.prepareHost(st, st.Hosts[i], clientKey); err != nil {
			errs[i] = fmt.Errorf("prepare %s: %w", st.Hosts[i].Name, err)
		}
	})
	if err := joinErrs(errs); err != nil {
		return err
	}
	logf("host files written: %.2fs", time.Since(t0).Seconds())
	t0 = time.Now()
	defer func() { logf("hosts' sshd listening: %.2fs", time.Since(t0).Seconds()) }()
	for _, h := range st.Hosts {
		dir := st.hostDir(h)
		logFile, err := os.OpenFile(filepath.Join(dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("start %s: %w", h.Name, err)
		}
		// Started from a thread in the host's netns, which the child inherits,
		// into new mount (made private, as Go does for CLONE_NEWNS in
		// Unshareflags) and UTS namespaces: what `nsenter --net` and `unshare
		// --mount --uts --propagation private` did, two process starts a host
		// fewer. The shell execs the anchor, so the PID is the anchor's.
		cmd := exec.Command("/bin/sh", "-c", nsHostScript, "sh", dir, h.Name)
		cmd.Env = cleanEnv()
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS}
		if err := inNetns(netnsPath(h.NetNS), func() error { return startHostProcess(h, cmd, logFile) }); err != nil {
			return err
		}
	}
	if err := st.save(); err != nil {
		return err
	}
	// sshd daemonizes only after binding port 22, so its pid file appearing in
	// the host's /run means it is listening.
	// Hosts found ready are not read again, so each poll of a large lab costs
	// only the hosts still starting.
	pending := append([]*HostState(nil), st.Hosts...)
	return pollUntil(ctx, 20*time.Millisecond, func() (bool, error) {
		left := pending[:0]
		for _, h := range pending {
			if !h.Main.Alive() {
				log, _ := os.ReadFile(filepath.Join(st.hostDir(h), "console.log"))
				return false, fmt.Errorf("host %s exited during start: %s", h.Name, strings.TrimSpace(string(log)))
			}
			if _, err := sshdPID(h); err != nil {
				left = append(left, h)
			}
		}
		pending = left
		return len(pending) == 0, nil
	})
}

// prepareHost fills the host's upper dirs: its own hostname, machine-id, sshd
// config and host key, and a stock root home holding the lab key.
func (nsTier) prepareHost(st *State, h *HostState, clientKey string) error {
	dir := st.hostDir(h)
	etc := filepath.Join(dir, "etc", "upper")
	if err := mkdirs(0o755, etc, filepath.Join(dir, "etc", "work"),
		filepath.Join(dir, "var", "upper"), filepath.Join(dir, "var", "work"), filepath.Join(etc, "ssh")); err != nil {
		return err
	}
	if err := mkdirs(0o700, filepath.Join(dir, "root"), filepath.Join(dir, "root", ".ssh")); err != nil {
		return err
	}
	if err := writeHostIdentity(etc, h, st); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(etc, "ssh", "sshd_config"), []byte(sshdConfigNS), 0o644); err != nil {
		return err
	}
	// Hide the machine's own host keys: a lab host has only its own.
	keys, _ := filepath.Glob("/etc/ssh/ssh_host_*")
	for _, k := range keys {
		base := filepath.Base(k)
		if strings.HasPrefix(base, "ssh_host_ed25519_key") {
			continue
		}
		if err := unix.Mknod(filepath.Join(etc, "ssh", base), unix.S_IFCHR, 0); err != nil && !os.IsExist(err) {
			return fmt.Errorf("hide %s: %w", k, err)
		}
	}
	if err := writeFile(filepath.Join(dir, "fstab"), []byte(nsFstab(dir)), 0o644); err != nil {
		return err
	}
	return writeRootHome(filepath.Join(dir, "root"), clientKey)
}

// writeHostIdentity writes what makes a host itself into an /etc tree: a new
// host key (recorded in h for known_hosts), hostname, hosts and machine-id.
func writeHostIdentity(etc string, h *HostState, st *State) error {
	priv, pub, err := newKey("root@" + h.Name)
	if err != nil {
		return err
	}
	h.HostKey = pub
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"ssh/ssh_host_ed25519_key", string(priv), 0o600},
		{"ssh/ssh_host_ed25519_key.pub", pub + "\n", 0o644},
		{"hostname", h.Name + "\n", 0o644},
		{"hosts", fmt.Sprintf("127.0.0.1\tlocalhost\n%s\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n", h.MgmtIP, h.Name), 0o644},
		{"machine-id", machineID(st.ID, h.Name) + "\n", 0o444},
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(etc, f.name), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	return nil
}

// writeRootHome makes a stock root home: Debian's skeleton dotfiles (which
// return at once for non-interactive shells, unlike the machine's own
// .bashrc) and the lab key in authorized_keys.
func writeRootHome(home, clientKey string) error {
	for _, f := range []string{".bashrc", ".profile"} {
		if b, err := os.ReadFile(filepath.Join("/etc/skel", f)); err == nil {
			if err := writeFile(filepath.Join(home, f), b, 0o644); err != nil {
				return err
			}
		}
	}
	if err := mkdirs(0o700, filepath.Join(home, ".ssh")); err != nil {
		return err
	}
	return writeFile(filepath.Join(home, ".ssh", "authorized_keys"), []byte(clientKey+"\n"), 0o600)
}

func (nsTier) Stop(context.Context, *State) error    { return nil }
func (nsTier) Cleanup(context.Context, *State) error { return nil }

func (nsTier) Command(st *State, h *HostState, argv []string) ([]string, error) {
	if !h.Main.Alive() {
		return nil, fmt.Errorf("host %s is not running", h.Name)
	}
	args := []string{"nsenter", "-t", strconv.Itoa(h.Main.PID), "--mount", "--uts", "--net", "--"}
	return append(append(args, hostEnv()...), argv...), nil
}

// sshdPID reads the host's sshd pid file through the anchor's view of /run.
func sshdPID(h *HostState) (Proc, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/run/sshd.pid", h.Main.PID))
	if err != nil {
		return Proc{}, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return Proc{}, fmt.Errorf("sshd pid file of %s: %w", h.Name, err)
	}
	return procOf(pid)
}

func (nsTier) StopSSH(ctx context.Context, st *State, h *HostState) error {
	p, err := sshdPID(h)
	if err != nil {
		return nil // not running
	}
	return stopProcs(ctx, []Proc{p}, syscall.SIGTERM, 5*time.Second)
}

func (t nsTier) StartSSH(ctx context.Context, st *State, h *HostState) error {
	if p, err := sshdPID(h); err == nil && p.Alive() {
		return nil
	}
	argv, err := t.Command(st, h, []string{"/usr/sbin/sshd", "-E", "/var/log/sshd.log"})
	if err != nil {
		return err
	}
	if _, err := runCmd(ctx, "", argv[0], argv[1:]...); err != nil {
		return fmt.Errorf("start sshd on %s: %w", h.Name, err)
	}
	return nil
}

// hostEnv is the environment commands get inside a host: what a root login
// would have, none of the caller's.
func hostEnv() []string {
	return []string{"env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash", "LANG=C.UTF-8", "TERM=dumb"}
}

// cleanEnv is the environment for the lab's own daemons (anchor, nspawn).
func cleanEnv() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
}

// machineID derives a stable, unique machine-id for a host of a lab.
func machineID(labID, host string) string {
	f := fnv.New128a()
	f.Write([]byte(labID + "/" + host))
	return hex.EncodeToString(f.Sum(nil))
}

// NetnsPath is the host's network namespace.
func (nsTier) NetnsPath(st *State, h *HostState) string { return netnsPath(h.NetNS) }
