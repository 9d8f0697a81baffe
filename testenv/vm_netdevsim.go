package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// SR-IOV on the vm tier. No Debian kernel flavour builds netdevsim and
// QEMU's NICs have no virtual functions, so the vm assets build netdevsim
// as an out-of-tree module for exactly the guest's kernel: the matching
// linux-headers packages and netdevsim's sources from linux-source-<x.y>
// (all fetched with apt-get download), compiled with the kernel's own
// compiler. rcS loads it and makes one netdevsim device whose single port is
// the SR-IOV physical function VMSriovPF, offering VMSriovTotalVFs VFs.
//
// The build needs vmNetdevsimTools on this machine. Without them (or when the
// build fails outside CI) the vm tier works without SR-IOV: the guest's
// /etc/runbook-lab/sriov-skip then says why.
const (
	// VMSriovPF is the name of the SR-IOV physical function on every vm-tier
	// host (a netdevsim port, renamed at boot like a PCI NIC's PF).
	VMSriovPF = "ens2f0"
	// VMSriovTotalVFs is its sriov_totalvfs: netdevsim's default limit.
	VMSriovTotalVFs = 4

	// vmNetdevsimRecipe changes whenever the build below changes what it
	// makes.
	vmNetdevsimRecipe = "netdevsim-1"
	// vmNetdevsimCC is the compiler Debian bookworm builds its kernels with
	// (CONFIG_CC_VERSION_TEXT); a module must be built with the same.
	vmNetdevsimCC = "gcc-12"
)

// vmNetdevsimTools are the programs the build runs (gcc-12 and make,
// binutils' ld and strip, xz for the source tarball).
var vmNetdevsimTools = []string{vmNetdevsimCC, "make", "ld", "strip", "xz"}

// netdevsimTotalVFs gives the lab's netdevsim a sriov_totalvfs file (its
// VF limit), which a PCI physical function has and netdevsim of Linux 6.1
// keeps in debugfs only; the sriov module reads it to refuse too many VFs.
const netdevsimTotalVFs = `
static ssize_t
nsim_bus_dev_totalvfs_show(struct device *dev,
			   struct device_attribute *attr, char *buf)
{
	return sprintf(buf, "%u\n", READ_ONCE(to_nsim_bus_dev(dev)->max_vfs));
}

static struct device_attribute nsim_bus_dev_totalvfs_attr =
	__ATTR(sriov_totalvfs, 0444, nsim_bus_dev_totalvfs_show, NULL);

`

// patchNetdevsimBus adds the sriov_totalvfs attribute to bus.c.
func patchNetdevsimBus(src string) (string, error) {
	const attrs = "static struct attribute *nsim_bus_dev_attrs[] = {\n"
	const numvfs = "\t&nsim_bus_dev_numvfs_attr.attr,\n"
	if strings.Count(src, attrs) != 1 || strings.Count(src, numvfs) != 1 {
		return "", errors.New("netdevsim bus.c: no single attribute list to add sriov_totalvfs to")
	}
	src = strings.Replace(src, attrs, netdevsimTotalVFs+attrs, 1)
	return strings.Replace(src, numvfs, numvfs+"\t&nsim_bus_dev_totalvfs_attr.attr,\n", 1), nil
}

// netdevsimToolchain fingerprints the build tools for the assets hash (so
// installing or updating them builds new assets) and names those missing.
func netdevsimToolchain() (fingerprint string, missing []string) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", vmNetdevsimRecipe, netdevsimTotalVFs)
	for _, tool := range vmNetdevsimTools {
		p, err := lookPath(tool)
		if err != nil {
			missing = append(missing, tool)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			missing = append(missing, tool)
			continue
		}
		fmt.Fprintf(h, "%s %x\n", tool, sha256.Sum256(b))
	}
	if len(missing) > 0 {
		return "missing " + strings.Join(missing, ","), missing
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// netdevsimSkip is why a vm assets build has no netdevsim, or "" when it
// can try: the tools it lacks.
func netdevsimSkip(missing []string) string {
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("no SR-IOV on the vm tier: building netdevsim for the guest kernel needs %s (apt-get install gcc-12 make binutils xz-utils)",
		strings.Join(missing, ", "))
}

// buildNetdevsim compiles netdevsim.ko for the kernel image package image
// (version, release) in work and returns the module, stripped of debug info.
func buildNetdevsim(ctx context.Context, image, version, release, work string) ([]byte, error) {
	bctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	headers := "linux-headers-" + release
	out, err := runCmd(bctx, "", "apt-cache", "depends", "--important", headers+"="+version)
	if err != nil {
		return nil, fmt.Errorf("netdevsim: %w", err)
	}
	common := parseAptDepends(string(out), "linux-headers-")
	kbuild := parseAptDepends(string(out), "linux-kbuild-")
	if common == "" || kbuild == "" {
		return nil, fmt.Errorf("netdevsim: %s names no -common or kbuild package", headers)
	}
	// linux-source-<major.minor>, of the very version of the image.
	f := strings.SplitN(version, ".", 3)
	if len(f) < 3 {
		return nil, fmt.Errorf("netdevsim: kernel version %q", version)
	}
	source := "linux-source-" + f[0] + "." + f[1]
	debs, err := aptDownload(bctx, work, headers+"="+version, common+"="+version, kbuild+"="+version, source+"="+version)
	if err != nil {
		return nil, fmt.Errorf("netdevsim: %w", err)
	}
	root := filepath.Join(work, "root")
	for _, d := range debs[:3] {
		if _, err := runCmd(bctx, "", "dpkg-deb", "-x", d, root); err != nil {
			return nil, fmt.Errorf("netdevsim: %w", err)
		}
	}
	// The flavour's Makefile includes the -common tree by its installed
	// path; point it at the unpacked one.
	kdir := filepath.Join(root, "usr", "src", headers)
	mk := filepath.Join(kdir, "Makefile")
	b, err := os.ReadFile(mk)
	if err != nil {
		return nil, fmt.Errorf("netdevsim: %w", err)
	}
	if err := os.WriteFile(mk, bytes.ReplaceAll(b, []byte("/usr/src/"), []byte(filepath.Join(root, "usr", "src")+"/")), 0o644); err != nil {
		return nil, err
	}
	src := filepath.Join(work, "netdevsim")
	if err := readDeb(bctx, debs[3], func(r io.Reader) error { return netdevsimSources(bctx, r, src) }); err != nil {
		return nil, fmt.Errorf("netdevsim: %w", err)
	}
	bus := filepath.Join(src, "bus.c")
	b, err = os.ReadFile(bus)
	if err != nil {
		return nil, fmt.Errorf("netdevsim: %w", err)
	}
	patched, err := patchNetdevsimBus(string(b))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(bus, []byte(patched), 0o644); err != nil {
		return nil, err
	}
	if out, err := runCmd(bctx, "", "make", "-j2", "-C", kdir, "M="+src, "CONFIG_NETDEVSIM=m", "modules"); err != nil {
		return nil, fmt.Errorf("netdevsim: %w\n%s", err, out)
	}
	ko := filepath.Join(src, "netdevsim.ko")
	if _, err := runCmd(bctx, "", "strip", "--strip-debug", ko); err != nil {
		return nil, fmt.Errorf("netdevsim: %w", err)
	}
	return os.ReadFile(ko)
}

// netdevsimSources writes drivers/net/netdevsim/ of the kernel source
// tarball inside a linux-source package's tree r into dir.
func netdevsimSources(ctx context.Context, r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return errors.New("no kernel source tarball (usr/src/linux-source-*.tar.xz)")
		}
		if err != nil {
			return err
		}
		if m, _ := path.Match("usr/src/linux-source-*.tar.xz", strings.TrimPrefix(hdr.Name, "./")); m {
			return netdevsimFromTarball(ctx, tr, dir)
		}
	}
}

func netdevsimFromTarball(ctx context.Context, r io.Reader, dir string) error {
	x := exec.CommandContext(ctx, "xz", "-dc", "-T0")
	x.Stdin = r
	stdout, err := x.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	x.Stderr = &stderr
	if err := x.Start(); err != nil {
		return fmt.Errorf("xz: %w", err)
	}
	n, rerr := netdevsimFiles(stdout, dir)
	_, _ = io.Copy(io.Discard, stdout)
	werr := x.Wait()
	if rerr != nil {
		return rerr
	}
	if werr != nil {
		return fmt.Errorf("xz: %w: %s", werr, strings.TrimSpace(stderr.String()))
	}
	if n == 0 {
		return errors.New("the kernel source has no drivers/net/netdevsim")
	}
	return nil
}

// netdevsimFiles writes the regular files directly in TOP/drivers/net/netdevsim/
// of the tar stream r into dir and returns how many.
func netdevsimFiles(r io.Reader, dir string) (int, error) {
	tr := tar.NewReader(r)
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		// Only the driver's directory below the tree's top one: the
		// selftests have a netdevsim directory of their own.
		top, rel, ok := strings.Cut(strings.TrimPrefix(hdr.Name, "./"), "/drivers/net/netdevsim/")
		if !ok || strings.Contains(top, "/") || hdr.Typeflag != tar.TypeReg || rel == "" || strings.Contains(rel, "/") {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return n, err
		}
		if err := writeFile(filepath.Join(dir, rel), b, 0o644); err != nil {
			return n, err
		}
		n++
	}
}

// vmNetdevsim builds netdevsim.ko into kp's modules (as updates/netdevsim.ko)
// and returns "", or returns why the guest gets no SR-IOV. A failed build is
// an error under CI=true (where the tools are there), a reason elsewhere.
func vmNetdevsim(ctx context.Context, in *vmInputs, kp *kernelPackage, image, version, work string) (string, error) {
	if why := netdevsimSkip(in.netdevsimMissing); why != "" {
		return why, nil
	}
	defer os.RemoveAll(work)
	ko, err := buildNetdevsim(ctx, image, version, kp.release, work)
	if err == nil {
		var m *kmod
		if m, err = newKmod("updates/netdevsim.ko", ko); err == nil {
			kp.modules[m.name] = m
			return "", nil
		}
	}
	if os.Getenv("CI") == "true" {
		return "", err
	}
	return fmt.Sprintf("no SR-IOV on the vm tier: %v", err), nil
}
