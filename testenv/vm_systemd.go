package testenv

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// VMUserland values (Options.VMUserland): what a vm-tier guest runs.
const (
	// VMUserlandBusybox (the default, also "") is the initramfs userland:
	// busybox, OpenSSH, iproute2; fast to boot, no systemd.
	VMUserlandBusybox = "busybox"
	// VMUserlandSystemd boots the systemd tier's base tree (systemd,
	// NetworkManager, firewalld, ifupdown, ...) as the guest's root disk,
	// so every module that needs systemd and a real kernel applies.
	VMUserlandSystemd = "systemd"
)

// vmSystemdRecipe versions how the root image is made from the base tree;
// changing the recipe builds a new image.
const vmSystemdRecipe = "vm-systemd-image-1"

const (
	// vmSystemdMemoryMiB: systemd, journald, udevd, NetworkManager and
	// firewalld need more than the busybox guest's 256 MiB.
	vmSystemdMemoryMiB = 512
	// vmSystemdLayersMemoryMiB is a guest's memory with layers: libvirt's
	// daemons and the QEMU they run to probe its capabilities.
	vmSystemdLayersMemoryMiB = 640
	// vmSystemdImageSize is the root image's (sparse) size; the base tree
	// is about 400 MiB.
	vmSystemdImageSize = 2 << 30
)

//go:embed testdata/vm/systemd-init
var vmSystemdInit string

//go:embed testdata/vm/systemd-ready
var vmSystemdReady string

// vmSystemdMasked are units a lab guest does without: they wait for
// hardware, time or a login, or redo first-boot work (caches of /etc and
// /usr) that costs seconds in an emulated CPU.
var vmSystemdMasked = []string{
	"serial-getty@ttyS0.service", "getty@tty1.service",
	"NetworkManager-wait-online.service", "systemd-networkd-wait-online.service",
	"ldconfig.service", "systemd-hwdb-update.service", "systemd-journal-catalog-update.service",
	"systemd-update-done.service", "systemd-fsck-root.service", "e2scrub_reap.service",
	"man-db.timer", "dpkg-db-backup.timer", "e2scrub_all.timer", "fstrim.timer",
	"systemd-tmpfiles-clean.timer",
	// udevadm settle before ifup (10 s under TCG): the lab's eth0 is there
	// before systemd starts, and no interface is hotplugged at boot.
	"ifupdown-pre.service",
	// Kernel debugging and binfmt file systems nothing in the lab uses.
	"sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-fs-fuse-connections.mount",
	"dev-hugepages.mount", "systemd-binfmt.service",
}

// vmSystemdCtlUnit runs the control sshd in the labctl namespace (made by
// the first stage), as a unit of its own so stopping ssh.service leaves it.
const vmSystemdCtlUnit = `[Unit]
Description=runbook lab control channel (sshd in network namespace labctl)
DefaultDependencies=no
After=local-fs.target

[Service]
NetworkNamespacePath=/run/netns/labctl
ExecStartPre=/bin/mkdir -p -m 0755 /run/sshd
ExecStart=/usr/sbin/sshd -D -f /etc/runbook-lab/sshd_ctl
KillMode=process
Restart=always

[Install]
WantedBy=multi-user.target
`

const vmSystemdReadyUnit = `[Unit]
Description=runbook lab: tell testenv the host is up
After=ssh.service runbook-lab-ctl.service networking.service

[Service]
Type=oneshot
ExecStart=/usr/lib/runbook-lab/ready
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
`

// vmSystemdSSHDropIn keeps /run/sshd when ssh.service stops (Break): the
// control sshd needs it too.
const vmSystemdSSHDropIn = `[Service]
RuntimeDirectoryPreserve=yes
`

// checkVMUserland validates Options.VMUserland against the tier and layers.
func checkVMUserland(tier TierName, userland string, layers []string) error {
	switch userland {
	case "", VMUserlandBusybox:
		if tier == TierVM && len(layers) > 0 {
			return fmt.Errorf("layers %v need the vm tier's %s userland", layers, VMUserlandSystemd)
		}
		return nil
	case VMUserlandSystemd:
		if tier != TierVM {
			return fmt.Errorf("userland %q is for the vm tier, not %s", userland, tier)
		}
		return checkLayers(TierSystemd, layers)
	}
	return fmt.Errorf("unknown vm userland %q (have %s, %s)", userland, VMUserlandBusybox, VMUserlandSystemd)
}

// vmSystemd reports whether the lab's vm guests run the systemd userland.
func (st *State) vmSystemd() bool { return st.VMUserland == VMUserlandSystemd }

// vmSystemdPrepare makes sure the base tree and its root image exist.
func vmSystemdPrepare(ctx context.Context, st *State, logf func(string, ...any)) error {
	if !st.vmSystemd() {
		return nil
	}
	var missing []string
	for _, p := range []string{"mkfs.ext4", "cp", "chroot"} {
		if _, err := lookPath(p); err != nil {
			missing = append(missing, "missing program "+p+", for the systemd userland")
		}
	}
	if len(missing) > 0 {
		return &PrereqError{Tier: TierVM, Missing: missing}
	}
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
	a, err := loadVMAssets(st.VMAssets)
	if err != nil {
		return err
	}
	img, err := ensureVMRootImage(ctx, base, st.Layers, st.LayerTrees, a, logf)
	if err != nil {
		return err
	}
	st.VMRootImage = img
	return st.save()
}

// ensureVMRootImage returns the cached ext4 image of the base tree (under
// the lab's layers, bottom first, if any) with the guest kernel's whole
// module tree, making it first if needed. Guests open it read-only with a
// per-host snapshot. Each set of layers has an image of its own, keyed by
// the layers' cache directories (which carry their hashes).
func ensureVMRootImage(ctx context.Context, base string, names, layers []string, a *vmAssets, logf func(string, ...any)) (string, error) {
	key := vmSystemdRecipe + "\n" + base + "\n" + a.Dir + "\n" + strconv.Itoa(vmSystemdImageSize)
	prefix := "vmroot-"
	if len(layers) > 0 {
		key += "\n" + vmSystemdLayerRecipe + "\n" + strings.Join(layers, "\n")
		prefix = "vmroot-layers-"
	}
	sum := sha256.Sum256([]byte(key))
	dir := filepath.Join(baseCacheDir, prefix+hex.EncodeToString(sum[:8]))
	img := filepath.Join(dir, "root.ext4")
	done := filepath.Join(dir, "complete")
	if exists(done) {
		return img, nil
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", fmt.Errorf("vm root image: %w", err)
	}
	defer unlock()
	if exists(done) {
		return img, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("vm root image: %w", err)
	}
	logf("making the vm tier's systemd root image from %s, layers %v and %s (once; cached in %s)", base, layers, a.Release, dir)
	start := time.Now()
	work := filepath.Join(dir, "work")
	_ = os.RemoveAll(work)
	defer os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", fmt.Errorf("vm root image: %w", err)
	}
	tmp := img + ".tmp"
	_ = os.Remove(tmp)
	if err := buildVMRootImage(ctx, base, names, layers, a, work, tmp); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("vm root image: %w", err)
	}
	if err := os.Rename(tmp, img); err != nil {
		return "", fmt.Errorf("vm root image: %w", err)
	}
	if err := os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("vm root image: %w", err)
	}
	logf("root image made in %s", time.Since(start).Round(100*time.Millisecond))
	pruneVMRootImages(prefix, dir)
	return img, nil
}

// pruneVMRootImages removes the root images of earlier inputs (an updated
// base tree, layer or kernel) named prefix<hash>, except keep: images of
// the other kind (with or without layers) stay. One whose lock someone
// holds (being made) stays. A running guest keeps its open image until it
// stops.
func pruneVMRootImages(prefix, keep string) {
	dirs, _ := filepath.Glob(filepath.Join(baseCacheDir, prefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), prefix)
		if d == keep || strings.Contains(rest, "-") || strings.Contains(rest, ".") {
			continue
		}
		lctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		unlock, err := lockFile(lctx, d+".lock")
		cancel()
		if err != nil {
			continue
		}
		_ = os.RemoveAll(d)
		_ = os.Remove(d + ".lock")
		unlock()
	}
}

// buildVMRootImage writes the image to img: a staging copy of the base tree
// (hard links: nothing in it is changed, only added) gets
// /usr/lib/modules/<release> from the kernel package, netdevsim from the
// initramfs, and the indexes of the base tree's own depmod; mkfs.ext4 -d
// then copies it with owners and modes, no mount needed.
//
// With layers, the stage is instead the upper directory of an overlay whose
// lower directories are the layers and the base tree: depmod and mkfs.ext4
// run on the merged view (vmSystemdLayerScript), where the layers'
// whiteouts hide what they remove, after the layers' tweaks for a guest
// (vmSystemdLayerTweaks).
func buildVMRootImage(ctx context.Context, base string, names, layers []string, a *vmAssets, work, img string) error {
	bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	stage := filepath.Join(work, "stage")
	if len(layers) == 0 {
		if _, err := runCmd(bctx, "", "cp", "-al", base, stage); err != nil {
			return err
		}
	} else if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	debs, err := aptDownload(bctx, work, "linux-image-"+a.Release)
	if err != nil {
		return err
	}
	kdir := filepath.Join(work, "kernel")
	if _, err := runCmd(bctx, "", "dpkg-deb", "-x", debs[0], kdir); err != nil {
		return err
	}
	mods := filepath.Join(stage, "usr", "lib", "modules", a.Release)
	if err := os.MkdirAll(filepath.Dir(mods), 0o755); err != nil {
		return err
	}
	src := filepath.Join(kdir, "lib", "modules", a.Release)
	if !exists(src) {
		src = filepath.Join(kdir, "usr", "lib", "modules", a.Release)
	}
	if err := os.Rename(src, mods); err != nil {
		return fmt.Errorf("kernel modules: %w", err)
	}
	// Modules built for the guest (netdevsim) are in the initramfs only.
	if _, err := lookPath("cpio"); err == nil {
		cdir := filepath.Join(work, "initrd")
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return err
		}
		script := `cd "$1" && cpio -idm --quiet --no-absolute-filenames 'usr/lib/modules/*/updates/*' < "$2"`
		if _, err := runCmd(bctx, "", "sh", "-c", script, "sh", cdir, a.Initrd); err == nil {
			if up := filepath.Join(cdir, "usr", "lib", "modules", a.Release, "updates"); exists(up) {
				if err := os.Rename(up, filepath.Join(mods, "updates")); err != nil {
					return err
				}
			}
		}
	}
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(vmSystemdImageSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	if len(layers) > 0 {
		lowers := []string{base}
		for _, l := range layers {
			lowers = append([]string{l}, lowers...)
		}
		var tweaks []string
		for _, n := range names {
			if tw, ok := vmSystemdLayerTweaks[n]; ok {
				tweaks = append(tweaks, tw)
			}
		}
		if out, err := runCmd(bctx, "", "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
			vmSystemdLayerScript, "sh", strings.Join(lowers, ":"), stage, work, a.Release, img, strings.Join(tweaks, "\n")); err != nil {
			return fmt.Errorf("%w\n%s", err, tail(string(out), 3000))
		}
		return nil
	}
	if _, err := runCmd(bctx, "", "chroot", stage, "/usr/sbin/depmod", "-a", a.Release); err != nil {
		return fmt.Errorf("depmod: %w", err)
	}
	if _, err := runCmd(bctx, "", "mkfs.ext4", "-q", "-F", "-L", "runbook-root", "-E", "root_owner=0:0", "-d", stage, img); err != nil {
		return fmt.Errorf("mkfs.ext4: %w", err)
	}
	return nil
}

// vmSystemdLayerRecipe versions how an image with layers is made
// (vmSystemdLayerScript and the layers' guest tweaks).
const vmSystemdLayerRecipe = "vm-systemd-layers-2"

// vmSystemdLayerTweaks are shell commands run on a guest's merged tree
// ($root) per layer: they undo what a layer does only for containers.
var vmSystemdLayerTweaks = map[string]string{
	// A guest has a cgroup hierarchy of its own and systemd-machined:
	// libvirt puts each QEMU in a scope under machine.slice, as on a real
	// host, so the container-only cgroup_controllers line goes.
	LayerLibvirt: `sed -i -e '/^# Lab host (testenv): no cgroups/d' -e '/^cgroup_controllers = \[ \]$/d' "$root/etc/libvirt/qemu.conf"`,
}

// vmSystemdLayerScript makes the root image of a lab with layers, in a
// private mount namespace (the mount dies with it): the layers (top first)
// and the base tree under the stage with the kernel's modules, merged
// read-write so depmod can write its indexes to the stage and the layers'
// tweaks ($6) their changes; mkfs.ext4 -d then copies the merged view.
const vmSystemdLayerScript = `set -eu
lower=$1 stage=$2 work=$3 release=$4 img=$5 tweaks=$6
mkdir -p "$work/ovl-work" "$work/root"
mount -t overlay lab-vmroot -o "lowerdir=$lower,upperdir=$stage,workdir=$work/ovl-work" "$work/root"
root=$work/root
eval "$tweaks"
chroot "$root" /usr/sbin/depmod -a "$release"
mkfs.ext4 -q -F -L runbook-root -E root_owner=0:0 -d "$root" "$img"
`

// vmSystemdHostFiles adds to host h's initramfs archive the first stage and
// /etc/runbook-lab/overlay, which the first stage copies over the root disk:
// the management address for ifupdown, the lab's units, the masks.
func vmSystemdHostFiles(t *cpioTree, st *State, h *HostState) error {
	if !st.vmSystemd() {
		return nil
	}
	const ov = "/etc/runbook-lab/overlay"
	files := []struct {
		p, content string
		perm       uint32
	}{
		{"/etc/runbook-lab/systemd-init", vmSystemdInit, 0o755},
		{ov + "/usr/lib/runbook-lab/ready", vmSystemdReady, 0o755},
		{ov + "/etc/network/interfaces", ifupdownConfig(st, h), 0o644},
		{ov + "/etc/systemd/system/runbook-lab-ctl.service", vmSystemdCtlUnit, 0o644},
		{ov + "/etc/systemd/system/runbook-lab-ready.service", vmSystemdReadyUnit, 0o644},
		{ov + "/etc/systemd/system/ssh.service.d/runbook-lab.conf", vmSystemdSSHDropIn, 0o644},
	}
	for _, f := range files {
		if err := t.File(f.p, []byte(f.content), f.perm); err != nil {
			return err
		}
	}
	for _, u := range []string{"runbook-lab-ctl.service", "runbook-lab-ready.service"} {
		if err := t.Symlink(ov+"/etc/systemd/system/multi-user.target.wants/"+u, "/etc/systemd/system/"+u); err != nil {
			return err
		}
	}
	for _, u := range vmSystemdMasked {
		if err := t.Symlink(ov+"/etc/systemd/system/"+u, "/dev/null"); err != nil {
			return err
		}
	}
	return nil
}

// vmSystemdQemuArgs turns a busybox guest's QEMU command line into a
// systemd guest's: more memory, the root disk (the shared image opened
// read-only, writes to a snapshot in the host's directory), and the first
// stage as the initramfs's init.
func vmSystemdQemuArgs(st *State, args []string) []string {
	if !st.vmSystemd() {
		return args
	}
	out := append([]string{}, args...)
	for i := 0; i+1 < len(out); i++ {
		switch out[i] {
		case "-m":
			out[i+1] = strconv.Itoa(vmSystemdMemoryMiB)
			if len(st.Layers) > 0 {
				out[i+1] = strconv.Itoa(vmSystemdLayersMemoryMiB)
			}
		case "-append":
			out[i+1] += " rdinit=/etc/runbook-lab/systemd-init systemd.show_status=0 systemd.firstboot=0 systemd.gpt_auto=0"
		}
	}
	return append(out,
		"-drive", "file="+st.VMRootImage+",format=raw,if=none,id=root,snapshot=on,cache=unsafe,discard=unmap",
		"-device", "virtio-blk-pci,drive=root")
}

// vmQemuEnv is QEMU's environment: the snapshot of a systemd guest's root
// disk goes to the host's directory (TMPDIR), so it goes with the lab even
// if QEMU is killed.
func vmQemuEnv(st *State, hostDir string) []string {
	env := cleanEnv()
	if st.vmSystemd() {
		env = append(env, "TMPDIR="+hostDir)
	}
	return env
}

// vmSSHScripts are the shell commands that stop and start the guest's main
// sshd for Break/Heal.
func vmSSHScripts(st *State) (stop, start string) {
	if st.vmSystemd() {
		return "systemctl stop ssh.service", "systemctl start ssh.service && " + vmWaitListen
	}
	return vmStopSSH, vmStartSSH
}
