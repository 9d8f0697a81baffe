package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runbook/runbook/internal/sh"
)

func init() { registerTier(vmTier{}) }

// vmTier boots each host as a QEMU micro-VM (TCG: no KVM needed) running
// Debian's own kernel with the whole userland in an initramfs, so network
// modules meet a real kernel with bonding and 802.1Q. QEMU runs inside the
// host's lab namespace: there a bridge joins the namespace's eth0 (the
// management veth to the hub) and the tap of the guest's eth0, which carries
// the host's management address, so the forwarders reach the guest's sshd as
// they reach any lab host.
//
// Each guest has two data NICs (named like the other tiers' hosts, ens1f0
// and ens1f1), each wired by a QEMU hub to a NIC in the guest's own
// "switch" namespace, where an 802.3ad bond answers LACP; see VMPartner*. A
// sixth NIC (QEMU user-mode networking, restrict=on) sits in the guest's
// "labctl" namespace with a second sshd: the lab's control channel, reached
// from the host's lab namespace at 127.0.0.1:vmCtlPort.
type vmTier struct{}

// The LACP partner inside each VM (namespace "switch"): a bond of the two
// partner NICs with an untagged address and a VLAN. Tests configure the
// host's side in the same subnets.
const (
	VMPartnerBond     = "bond0"
	VMPartnerMTU      = 9100
	VMPartnerAddr     = "192.0.2.254"    // on the partner bond, /24
	VMPartnerVLAN     = 100              // VLAN id on the partner bond
	VMPartnerVLANAddr = "198.51.100.254" // on the partner VLAN, /24
)

const (
	vmMemoryMiB  = 256
	vmTBCacheMiB = 64
	// vmCtlPort is where QEMU forwards the control channel, on the loopback
	// of the host's lab namespace (private to that namespace).
	vmCtlPort = 2222
	// vmBridge and vmTap join the management veth and the guest's eth0
	// inside the host's lab namespace.
	vmBridge = "br0"
	vmTap    = "tap0"
	// vmQboot is QEMU's minimal firmware (qemu-system-data): it hands over
	// to the kernel about half a second sooner than SeaBIOS under TCG.
	vmQboot = "/usr/share/qemu/qboot.rom"
	// vmBootTimeout bounds a boot from QEMU start to both sshds up.
	vmBootTimeout = 3 * time.Minute
)

func (vmTier) Name() TierName { return TierVM }

func (vmTier) Check() error {
	missing := baseCheck("qemu-system-x86_64", "ssh", "sshd", "ldd", "apt-get", "apt-cache", "dpkg-deb")
	for _, f := range []string{"/dev/net/tun", "/usr/lib/openssh/sftp-server"} {
		if !exists(f) {
			missing = append(missing, "missing "+f)
		}
	}
	for _, b := range vmBinaries {
		if strings.HasPrefix(b, "/") {
			continue
		}
		if _, err := lookPath(b); err != nil {
			missing = append(missing, "missing program "+b)
		}
	}
	if len(missing) > 0 {
		return &PrereqError{Tier: TierVM, Missing: missing}
	}
	return nil
}

func (vmTier) Prepare(ctx context.Context, st *State, logf func(string, ...any)) error {
	a, err := ensureVMAssets(ctx, logf)
	if err != nil {
		return err
	}
	st.VMAssets = a.Dir
	if err := vmSystemdPrepare(ctx, st, logf); err != nil {
		return err
	}
	return st.save()
}

// vmNIC is one guest NIC: its name in the guest and its MAC address.
type vmNIC struct {
	name, mac string
}

// vmNICs are host h's guest NICs: management, the two data NICs, their two
// partners, control. The guest names them by MAC address at boot.
func vmNICs(st *State, h *HostState) []vmNIC {
	names := []string{mgmtNIC, h.DataIfs[0], h.DataIfs[1], "swp0", "swp1", "labctl0"}
	var out []vmNIC
	for i, n := range names {
		// Locally administered, unique within the lab (one lab, one bridge).
		out = append(out, vmNIC{name: n, mac: fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", st.Slot&0xff, h.Index>>8, h.Index&0xff, i)})
	}
	return out
}

// vmQemuArgs is the QEMU command line of host h (without the program).
func vmQemuArgs(a *vmAssets, hostDir string, nics []vmNIC) []string {
	args := []string{
		"-name", filepath.Base(hostDir),
		// A bounded translation cache: QEMU's default (1 GiB) shows up
		// in every VM's RSS.
		"-machine", "q35", "-accel", "tcg,tb-size=" + strconv.Itoa(vmTBCacheMiB), "-cpu", "max", "-smp", "1", "-m", strconv.Itoa(vmMemoryMiB),
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-no-reboot",
		"-serial", "file:" + filepath.Join(hostDir, "console.log"),
		"-kernel", a.Kernel, "-initrd", filepath.Join(hostDir, "initrd.img"),
		// No zeroing of every allocation (Debian's default) on an emulated CPU.
		"-append", "console=ttyS0 panic=-1 loglevel=4 init_on_alloc=0 edd=off random.trust_cpu=on i8042.noaux i8042.nokbd i8042.nopnp",
		// Management: the tap bridged to the lab.
		"-netdev", "tap,id=mgmt,ifname=" + vmTap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=mgmt,mac=" + nics[0].mac,
	}
	// Data NICs and their partners: a two-port hub is a cable. Link speed and
	// duplex make 802.3ad aggregate them (a virtio NIC reports neither by
	// default).
	for i := 0; i < 2; i++ {
		for _, n := range []vmNIC{nics[1+i], nics[3+i]} {
			id := "n" + strings.ReplaceAll(n.mac[len(n.mac)-2:], ":", "")
			args = append(args,
				"-netdev", fmt.Sprintf("hubport,id=%s,hubid=%d", id, i),
				"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s,speed=10000,duplex=full", id, n.mac))
		}
	}
	// The guest hands memory it frees back to QEMU (its initrd, for one).
	args = append(args, "-device", "virtio-balloon-pci,free-page-reporting=on")
	if exists(vmQboot) {
		args = append(args, "-bios", vmQboot)
	}
	args = append(args,
		"-netdev", fmt.Sprintf("user,id=ctl,restrict=on,ipv6=off,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:%d-%s:22", vmCtlPort, vmCtlGuestIP),
		"-device", "virtio-net-pci,netdev=ctl,mac="+nics[5].mac)
	return args
}

// vmHostEnv is /etc/runbook-lab/host.env, read by the guest's rcS.
func vmHostEnv(st *State, h *HostState, nics []vmNIC) string {
	gw, plen := st.hostNet(h)
	return fmt.Sprintf(`MGMT_NIC=%s
MGMT_ADDR=%s/%d
GATEWAY=%s
DATA_NICS=%q
PARTNER_NICS=%q
PARTNER_BOND=%s
PARTNER_MTU=%d
PARTNER_ADDR=%s/24
PARTNER_VLAN=%d
PARTNER_VLAN_ADDR=%s/24
CTL_NIC=%s
CTL_ADDR=%s/%s
`, nics[0].name, h.MgmtIP, plen, gw, nics[1].name+" "+nics[2].name, nics[3].name+" "+nics[4].name,
		VMPartnerBond, VMPartnerMTU, VMPartnerAddr, VMPartnerVLAN, VMPartnerVLANAddr, nics[5].name, vmCtlGuestIP, vmCtlPrefix)
}

// prepareHost writes host h's identity and its initrd: the cached base
// archive with a per-host archive appended (the kernel unpacks both).
func (vmTier) prepareHost(st *State, h *HostState, a *vmAssets, clientKey string) error {
	dir := st.hostDir(h)
	etc, root := filepath.Join(dir, "etc"), filepath.Join(dir, "root")
	if err := mkdirs(0o755, etc); err != nil {
		return err
	}
	if err := mkdirs(0o700, root); err != nil {
		return err
	}
	if err := writeHostIdentity(etc, h, st); err != nil {
		return err
	}
	if err := writeRootHome(root, clientKey); err != nil {
		return err
	}
	nics := vmNICs(st, h)
	t := newCpioTree()
	for _, d := range []struct {
		p    string
		perm uint32
	}{{"/etc", 0o755}, {"/etc/ssh", 0o755}, {"/etc/runbook-lab", 0o755}, {"/root", 0o700}, {"/root/.ssh", 0o700}} {
		if err := t.Dir(d.p, d.perm); err != nil {
			return err
		}
	}
	// Copies keep their modes (the host key is 0600, which sshd insists on).
	for _, f := range []string{"hostname", "hosts", "machine-id", "ssh/ssh_host_ed25519_key", "ssh/ssh_host_ed25519_key.pub"} {
		if err := t.CopyFile("/etc/"+f, filepath.Join(etc, f)); err != nil {
			return err
		}
	}
	for _, f := range []string{".bashrc", ".profile", ".ssh/authorized_keys"} {
		if p := filepath.Join(root, f); exists(p) {
			if err := t.CopyFile("/root/"+f, p); err != nil {
				return err
			}
		}
	}
	var nicList strings.Builder
	for _, n := range nics {
		fmt.Fprintf(&nicList, "%s %s\n", n.mac, n.name)
	}
	for p, content := range map[string]string{
		"/etc/runbook-lab/host.env":            vmHostEnv(st, h, nics),
		"/etc/runbook-lab/nics":                nicList.String(),
		"/etc/runbook-lab/ctl_authorized_keys": clientKey + "\n",
	} {
		if err := t.File(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := vmSystemdHostFiles(t, st, h); err != nil {
		return err
	}

	out, err := os.Create(filepath.Join(dir, "initrd.img"))
	if err != nil {
		return err
	}
	base, err := os.Open(a.Initrd)
	if err != nil {
		out.Close()
		return err
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	_, err = io.Copy(bw, base)
	base.Close()
	if err == nil {
		// The base archive's length is a multiple of 4, so the second
		// archive's header lands aligned, as the kernel wants it.
		_, err = t.WriteTo(bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("initrd of %s: %w", h.Name, err)
	}
	known := fmt.Sprintf("[127.0.0.1]:%d %s\n", vmCtlPort, strings.Join(strings.Fields(h.HostKey)[:2], " "))
	return writeFile(filepath.Join(dir, "ctl_known_hosts"), []byte(known), 0o644)
}

// vmNetnsSetup turns the host's lab namespace into a cable: the management
// address moves from the namespace's eth0 to the guest, and a bridge joins
// eth0 with the tap QEMU opens.
func vmNetnsSetup() []string {
	return []string{
		"addr flush dev " + mgmtNIC,
		"link add name " + vmBridge + " type bridge",
		"link set " + mgmtNIC + " master " + vmBridge,
		"tuntap add dev " + vmTap + " mode tap",
		"link set " + vmTap + " master " + vmBridge,
		"link set " + vmTap + " up",
		"link set " + vmBridge + " up",
	}
}

func (t vmTier) Start(ctx context.Context, st *State, clientKey string, logf func(string, ...any)) error {
	a, err := loadVMAssets(st.VMAssets)
	if err != nil {
		return err
	}
	for _, h := range st.Hosts {
		if err := t.prepareHost(st, h, a, clientKey); err != nil {
			return fmt.Errorf("prepare %s: %w", h.Name, err)
		}
		if err := ipBatch(ctx, h.NetNS, false, vmNetnsSetup()); err != nil {
			return fmt.Errorf("prepare %s: %w", h.Name, err)
		}
	}
	if err := st.save(); err != nil {
		return err
	}
	for _, h := range st.Hosts {
		dir := st.hostDir(h)
		logFile, err := os.OpenFile(filepath.Join(dir, "qemu.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("start %s: %w", h.Name, err)
		}
		// nsenter execs QEMU, so the PID is QEMU's.
		args := append([]string{"--net=" + netnsPath(h.NetNS), "--", "qemu-system-x86_64"}, vmSystemdQemuArgs(st, vmQemuArgs(a, dir, vmNICs(st, h)))...)
		args = append(args, vmQMPArgs(st, h)...)
		cmd := exec.Command("nsenter", args...)
		cmd.Env = vmQemuEnv(st, dir)
		if err := startHostProcess(h, cmd, logFile); err != nil {
			return err
		}
	}
	if err := st.save(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(st.Hosts))
	for i, h := range st.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = t.waitReady(ctx, st, h); errs[i] == nil {
				errs[i] = t.startMaster(st, h)
			}
		}()
	}
	wg.Wait()
	return joinErrs(errs)
}

// waitReady waits for the guest's rcS to say it is done (both sshds run).
func (vmTier) waitReady(ctx context.Context, st *State, h *HostState) error {
	bctx, cancel := context.WithTimeout(ctx, vmBootTimeout)
	defer cancel()
	console := filepath.Join(st.hostDir(h), "console.log")
	err := pollUntil(bctx, 50*time.Millisecond, func() (bool, error) {
		b, _ := os.ReadFile(console)
		s := string(b)
		if i := strings.Index(s, "runbook-lab: FAILED"); i >= 0 {
			return false, fmt.Errorf("host %s: boot failed: %s", h.Name, firstLine(s[i:]))
		}
		if strings.Contains(s, "runbook-lab: ready") {
			return true, nil
		}
		if !h.Main.Alive() {
			q, _ := os.ReadFile(filepath.Join(st.hostDir(h), "qemu.log"))
			return false, fmt.Errorf("host %s: QEMU exited during boot: %s\nconsole:\n%s", h.Name,
				strings.TrimSpace(string(q)), tail(s, 2000))
		}
		return false, nil
	})
	if err != nil {
		b, _ := os.ReadFile(console)
		return fmt.Errorf("host %s boot: %w\nconsole (end):\n%s", h.Name, err, tail(string(b), 1500))
	}
	if st.vmSystemd() {
		// The systemd userland keeps its disk across a reset, so a reboot the guest asks for
		// (the reboot module) resets it rather than ending QEMU (-no-reboot).
		if err := vmQMP(bctx, vmQMPSocket(st, h), `{"execute":"set-action","arguments":{"reboot":"reset"}}`); err != nil {
			return fmt.Errorf("host %s: let the guest reboot: %w", h.Name, err)
		}
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// Stop kills the VMs (nothing in them outlives the lab).
func (vmTier) Stop(ctx context.Context, st *State) error {
	var mains []Proc
	for _, h := range st.Hosts {
		mains = append(mains, h.Main)
	}
	return stopProcs(ctx, mains, syscall.SIGKILL, 5*time.Second)
}

func (vmTier) Cleanup(context.Context, *State) error { return nil }

// vmSSHArgs is the ssh client command line (after "ssh") that reaches host
// h's control sshd from inside its lab namespace.
func vmSSHArgs(st *State, h *HostState) []string {
	dir := st.hostDir(h)
	return []string{"-F", "none", "-T", "-p", strconv.Itoa(vmCtlPort), "-i", filepath.Join(st.Dir, fileKey),
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + filepath.Join(dir, "ctl_known_hosts"), "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "-o", "ControlPath=" + vmCtlSocket(st, h),
		"root@127.0.0.1"}
}

// vmCtlSocket is the control master's socket: commands share its SSH
// connection instead of each paying a key exchange in an emulated CPU. Where
// the master is not (yet, or no longer) there, ssh connects by itself.
func vmCtlSocket(st *State, h *HostState) string {
	p := filepath.Join(st.hostDir(h), "ctl.sock")
	if len(p) > 90 { // sun_path holds 108 bytes, and ssh adds a suffix while binding
		return "none"
	}
	return p
}

// startMaster starts host h's control master in its lab namespace (teardown
// ends it with everything else there).
func (vmTier) startMaster(st *State, h *HostState) error {
	if vmCtlSocket(st, h) == "none" {
		return nil
	}
	logFile, err := os.OpenFile(filepath.Join(st.hostDir(h), "ctl-master.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := append([]string{"--net=" + netnsPath(h.NetNS), "--", "ssh", "-M", "-N", "-o", "ControlPersist=no"}, vmSSHArgs(st, h)...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("host %s: control master: %w", h.Name, err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// Command runs argv in the guest over the control channel, with the same
// clean root environment as the other tiers.
func (vmTier) Command(st *State, h *HostState, argv []string) ([]string, error) {
	if !h.Main.Alive() {
		return nil, fmt.Errorf("host %s is not running", h.Name)
	}
	var words []string
	for _, w := range append(hostEnv(), argv...) {
		words = append(words, sh.Quote(w))
	}
	args := []string{"nsenter", "--net=" + netnsPath(h.NetNS), "--", "ssh"}
	args = append(args, vmSSHArgs(st, h)...)
	return append(args, "--", strings.Join(words, " ")), nil
}

// vmWaitListen waits until something listens on port 22 (sshd may go to
// the background before it does).
const vmWaitListen = `i=0; until cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q ':0016 0\{8,32\}:0000 0A'; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done`

// vmStopSSH stops the main sshd (the listener: sessions survive, as with
// `systemctl stop ssh`); vmStartSSH starts it unless it runs.
const (
	vmStopSSH  = `p=$(cat /run/sshd.pid 2>/dev/null) || exit 0; kill "$p" 2>/dev/null || exit 0; i=0; while kill -0 "$p" 2>/dev/null; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done; rm -f /run/sshd.pid`
	vmStartSSH = `p=$(cat /run/sshd.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null && exit 0; /usr/sbin/sshd || exit 1; ` + vmWaitListen
)

func (t vmTier) StopSSH(ctx context.Context, st *State, h *HostState) error {
	stop, _ := vmSSHScripts(st)
	return t.run(ctx, st, h, stop)
}

func (t vmTier) StartSSH(ctx context.Context, st *State, h *HostState) error {
	_, start := vmSSHScripts(st)
	return t.run(ctx, st, h, start)
}

// vmRestoreMgmt brings the guest's management NIC back as the boot script set it up,
// after a task took it down or re-addressed it (the busybox userland: from host.env);
// the systemd userland has ifupdown bring it up again when the default route is gone.
const (
	vmRestoreMgmt        = `. /etc/runbook-lab/host.env || exit 1; ip link set "$MGMT_NIC" up && ip addr replace "$MGMT_ADDR" dev "$MGMT_NIC" && ip route replace default via "$GATEWAY" dev "$MGMT_NIC"`
	vmSystemdRestoreMgmt = `ip link set eth0 up || exit 1; ip route show default | grep -q . && exit 0; ifdown --force eth0; ifup eth0`
)

// RestoreMgmt brings the guest's management NIC back (see vmRestoreMgmt).
func (t vmTier) RestoreMgmt(ctx context.Context, st *State, h *HostState) error {
	if st.vmSystemd() {
		return t.run(ctx, st, h, vmSystemdRestoreMgmt)
	}
	return t.run(ctx, st, h, vmRestoreMgmt)
}

func (t vmTier) run(ctx context.Context, st *State, h *HostState, script string) error {
	argv, err := t.Command(st, h, []string{"/bin/sh", "-c", script})
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

// NetnsPath is the host's lab namespace, where QEMU runs and the management
// veth ends.
func (vmTier) NetnsPath(st *State, h *HostState) string { return netnsPath(h.NetNS) }
