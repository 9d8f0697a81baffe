package testenv

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The vm tier's assets: a Debian kernel and an initramfs holding the whole
// userland (busybox, OpenSSH's sshd, iproute2, bash and the kernel modules the
// lab needs). They are built once per set of inputs and kept under
// baseCacheDir/vm-<hash>/, where the hash covers the kernel package and
// version, every file copied from this machine (by content), the module lists
// and the recipe, so a kernel update or a changed sshd builds new assets.
const (
	// vmKernelPackage is the metapackage naming the kernel. Debian's cloud
	// flavour boots fastest and has bonding, 8021q, virtio and the rest of
	// vmModules; no Debian flavour builds netdevsim (CONFIG_NETDEVSIM).
	vmKernelPackage = "linux-image-cloud-amd64"
	// vmRecipe changes whenever the build below changes what it writes.
	vmRecipe = "vm-recipe-1"
)

// vmBootModules are loaded at boot, in this order (modprobe pulls in their
// dependencies). bonding and dummy get the options a systemd Debian uses
// (no bond0 or dummy0 made at load).
var vmBootModules = []string{"virtio_pci", "virtio_net", "virtio_balloon", "bonding", "8021q"}

// vmExtraModules are in the initramfs for modprobe (and the kernel's own
// module requests) without being loaded at boot.
var vmExtraModules = []string{
	"bridge", "dummy", "veth", "macvlan", "ipvlan", "vxlan", "tun",
	"team", "team_mode_activebackup", "team_mode_loadbalance", "team_mode_roundrobin", "team_mode_broadcast",
	"sch_netem", "sch_htb", "sch_tbf", "sch_fq_codel", "cls_u32", "act_mirred",
	// The systemd userland's root disk.
	"virtio_blk",
}

var vmModuleOptions = map[string]string{
	"bonding": "max_bonds=0",
	"dummy":   "numdummies=0",
}

// vmBinaries are the programs copied from this machine, with every shared
// library ldd names. busybox (see vmAptPackages) supplies the rest of the
// userland; /bin/sh is dash, as on Debian.
var vmBinaries = []string{
	"dash", "bash", "sshd", "/usr/lib/openssh/sftp-server", "ip", "bridge", "ss", "tc",
}

// vmAptPackages are Debian packages fetched with apt whose programs (and
// their symlinks) in bin and sbin, and modprobe.d files, go into the guest,
// with the libraries ldd names. Debian's busybox package, unlike
// busybox-static, runs programs found in PATH before its own applets of the
// same name (so `env ip` is iproute2's); kmod gives the real modprobe,
// lsmod, modinfo and depmod.
var vmAptPackages = []string{"busybox", "kmod"}

// vmSkipApplets are busybox applets left out: a guest with a fake dpkg or rpm
// would mislead anything that detects the package manager.
var vmSkipApplets = map[string]bool{"dpkg": true, "dpkg-deb": true, "rpm": true, "rpm2cpio": true}

//go:embed testdata/vm/rcS
var vmRCS string

// vmAssets are the built files of one cache directory.
type vmAssets struct {
	Dir     string // cache directory
	Kernel  string // bzImage
	Initrd  string // uncompressed newc archive, without per-host files
	Release string // kernel release (uname -r)
}

func loadVMAssets(dir string) (*vmAssets, error) {
	rel, err := os.ReadFile(filepath.Join(dir, "release"))
	if err != nil {
		return nil, fmt.Errorf("vm assets %s: %w", dir, err)
	}
	return &vmAssets{Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.cpio"),
		Release: strings.TrimSpace(string(rel))}, nil
}

// hostFile is a file of this machine that goes into the initramfs at dst.
type hostFile struct {
	src, dst string
}

// vmInputs is everything the assets are made from, known before building.
type vmInputs struct {
	kernelPkg, kernelVersion string
	// pkgs are vmAptPackages as name=version.
	pkgs  []string
	files []hostFile
	// netdevsim fingerprints the tools that build netdevsim.ko (see
	// vm_netdevsim.go); netdevsimMissing are those this machine lacks.
	netdevsim        string
	netdevsimMissing []string
}

func (in *vmInputs) hash() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s %s\n%s\n%s\n%s\n%s\n", vmRecipe, in.kernelPkg, in.kernelVersion, strings.Join(in.pkgs, " "),
		vmRCS, vmOSRelease(), vmCtlScript)
	var etc []string
	for p := range vmEtcFiles {
		etc = append(etc, p)
	}
	sort.Strings(etc)
	for _, p := range etc {
		fmt.Fprintf(h, "%s\n%s\n", p, vmEtcFiles[p])
	}
	fmt.Fprintf(h, "boot %s\nextra %s\n", strings.Join(vmBootModules, ","), strings.Join(vmExtraModules, ","))
	var opts []string
	for m, o := range vmModuleOptions {
		opts = append(opts, m+"="+o)
	}
	sort.Strings(opts)
	fmt.Fprintf(h, "options %s\nskip %v\nnetdevsim %s %s\n", strings.Join(opts, ";"), vmSkipApplets, in.netdevsim, VMSriovPF)
	for _, f := range in.files {
		b, err := os.ReadFile(f.src)
		if err != nil {
			return "", fmt.Errorf("vm assets: %w", err)
		}
		fmt.Fprintf(h, "%s %x\n", f.dst, sha256.Sum256(b))
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ensureVMAssets returns the cached assets for the current inputs, building
// them first if needed. A file lock makes concurrent labs build them once.
func ensureVMAssets(ctx context.Context, logf func(string, ...any)) (*vmAssets, error) {
	in, err := gatherVMInputs(ctx)
	if err != nil {
		return nil, err
	}
	sum, err := in.hash()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(baseCacheDir, "vm-"+sum)
	done := filepath.Join(dir, "complete")
	if exists(done) {
		return loadVMAssets(dir)
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return nil, fmt.Errorf("vm assets: %w", err)
	}
	defer unlock()
	if exists(done) {
		return loadVMAssets(dir)
	}
	logf("building the vm tier assets from %s %s (once; cached in %s)", in.kernelPkg, in.kernelVersion, dir)
	start := time.Now()
	_ = os.RemoveAll(dir)
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("vm assets: %w", err)
	}
	if err := buildVMAssets(ctx, in, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("vm assets: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("vm assets: %w", err)
	}
	if err := os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("vm assets: %w", err)
	}
	logf("vm assets built in %s", time.Since(start).Round(100*time.Millisecond))
	pruneVMAssets(dir)
	return loadVMAssets(dir)
}

// pruneVMAssets removes the asset directories of earlier inputs (a kernel
// or sshd since updated), except keep; a directory whose lock someone holds
// (being built) stays.
func pruneVMAssets(keep string) {
	dirs, _ := filepath.Glob(filepath.Join(baseCacheDir, "vm-*"))
	for _, d := range dirs {
		if d == keep || strings.HasSuffix(d, ".lock") || strings.HasSuffix(d, ".tmp") {
			continue
		}
		lctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		unlock, err := lockFile(lctx, d+".lock")
		cancel()
		if err != nil {
			continue
		}
		_ = os.RemoveAll(d)
		_ = os.RemoveAll(d + ".tmp")
		_ = os.Remove(d + ".lock")
		unlock()
	}
}

func gatherVMInputs(ctx context.Context) (*vmInputs, error) {
	// One apt-cache run (loading apt's cache is most of its cost): the
	// metapackage's version moves with the kernel it names.
	vers, err := aptCandidates(ctx, append([]string{vmKernelPackage}, vmAptPackages...)...)
	if err != nil {
		return nil, err
	}
	in := &vmInputs{kernelPkg: vmKernelPackage, kernelVersion: vers[0]}
	in.netdevsim, in.netdevsimMissing = netdevsimToolchain()
	for i, p := range vmAptPackages {
		in.pkgs = append(in.pkgs, p+"="+vers[i+1])
	}
	seen := map[string]bool{}
	for _, b := range vmBinaries {
		p := b
		if !strings.HasPrefix(p, "/") {
			if p, err = lookPath(b); err != nil {
				return nil, fmt.Errorf("vm assets: %w", err)
			}
		}
		files, err := withLibraries(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if !seen[f.dst] {
				seen[f.dst] = true
				in.files = append(in.files, f)
			}
		}
	}
	return in, nil
}

// resolveKernelPackage finds the kernel image package a metapackage depends
// on and its candidate version, from the machine's apt lists.
func resolveKernelPackage(ctx context.Context, meta string) (pkg, version string, err error) {
	out, err := runCmd(ctx, "", "apt-cache", "depends", "--important", meta)
	if err != nil {
		return "", "", fmt.Errorf("vm assets: %w (is `apt-get update` done?)", err)
	}
	pkg = parseAptDepends(string(out), "linux-image-")
	if pkg == "" {
		return "", "", fmt.Errorf("vm assets: %s names no linux-image package (is `apt-get update` done?)", meta)
	}
	v, err := aptCandidates(ctx, pkg)
	if err != nil {
		return "", "", err
	}
	return pkg, v[0], nil
}

// aptCandidates are the versions apt would install of pkgs, in order.
func aptCandidates(ctx context.Context, pkgs ...string) ([]string, error) {
	out, err := runCmd(ctx, "", "apt-cache", append([]string{"policy"}, pkgs...)...)
	if err != nil {
		return nil, fmt.Errorf("vm assets: %w", err)
	}
	cand := parseAptPolicy(string(out))
	var vers []string
	for _, p := range pkgs {
		if cand[p] == "" {
			return nil, fmt.Errorf("vm assets: apt has no candidate version of %s (is `apt-get update` done?)", p)
		}
		vers = append(vers, cand[p])
	}
	return vers, nil
}

// parseAptDepends returns the first dependency in `apt-cache depends` output
// whose name starts with prefix.
func parseAptDepends(out, prefix string) string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(strings.TrimLeft(strings.TrimSpace(line), "|"))
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], prefix) {
			return f[1]
		}
	}
	return ""
}

// parseAptPolicy returns the Candidate of each package in `apt-cache
// policy` output (packages without one are left out).
func parseAptPolicy(out string) map[string]string {
	cand := map[string]string{}
	var pkg string
	for _, line := range strings.Split(out, "\n") {
		if line != "" && line[0] != ' ' && strings.HasSuffix(line, ":") {
			pkg = strings.TrimSuffix(line, ":")
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate:"); ok && pkg != "" {
			if v = strings.TrimSpace(v); v != "(none)" {
				cand[pkg] = v
			}
		}
	}
	return cand
}

// withLibraries returns bin and the shared libraries (and dynamic loader) ldd
// names for it, each at its path in the guest's merged-/usr layout.
func withLibraries(ctx context.Context, bin string) ([]hostFile, error) {
	files := []hostFile{{src: bin, dst: guestPath(bin)}}
	out, err := runCmd(ctx, "", "ldd", bin)
	if err != nil {
		if strings.Contains(string(out)+err.Error(), "not a dynamic executable") {
			return files, nil // static
		}
		return nil, fmt.Errorf("vm assets: %w", err)
	}
	libs, err := parseLdd(string(out))
	if err != nil {
		return nil, fmt.Errorf("vm assets: ldd %s: %w", bin, err)
	}
	for _, l := range libs {
		files = append(files, hostFile{src: l, dst: guestPath(l)})
	}
	return files, nil
}

// parseLdd returns the absolute library paths of ldd output, in order.
func parseLdd(out string) ([]string, error) {
	var libs []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "linux-vdso") || strings.HasPrefix(line, "linux-gate") {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("missing library: %s", line)
		}
		var p string
		if _, rhs, ok := strings.Cut(line, "=>"); ok {
			p = strings.Fields(rhs + " ")[0]
		} else {
			p = strings.Fields(line)[0]
		}
		if strings.HasPrefix(p, "/") {
			libs = append(libs, p)
		}
	}
	return libs, nil
}

// guestPath maps a path of this machine to the guest, where /bin, /sbin,
// /lib and /lib64 are symlinks into /usr. The directory's symlinks are
// resolved (as on this machine), the file name is kept (a library's soname).
func guestPath(p string) string {
	dir, base := filepath.Split(p)
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	return mergedUsr(filepath.Join(dir, base))
}

func mergedUsr(p string) string {
	p = path.Clean("/" + p)
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib64"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return "/usr" + p
		}
	}
	return p
}

// kmod is one kernel module of the kernel package.
type kmod struct {
	name    string
	rel     string // path below /lib/modules/<release>/
	depends []string
	aliases []string
	data    []byte
}

// parseModinfo reads the key=value strings of a module's .modinfo section.
func parseModinfo(ko []byte) (map[string][]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	b, err := sec.Data()
	if err != nil {
		return nil, err
	}
	info := map[string][]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok && k != "" {
			info[k] = append(info[k], v)
		}
	}
	return info, nil
}

func newKmod(rel string, data []byte) (*kmod, error) {
	info, err := parseModinfo(data)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", rel, err)
	}
	m := &kmod{rel: rel, data: data, aliases: info["alias"]}
	if n := info["name"]; len(n) > 0 && n[0] != "" {
		m.name = n[0]
	} else {
		m.name = strings.ReplaceAll(strings.TrimSuffix(path.Base(rel), ".ko"), "-", "_")
	}
	if d := info["depends"]; len(d) > 0 && d[0] != "" {
		m.depends = strings.Split(d[0], ",")
	}
	return m, nil
}

// moduleClosure returns want and everything they depend on, dependencies
// first. Modules built into the kernel (builtin) are skipped.
func moduleClosure(all map[string]*kmod, builtin map[string]bool, want []string) ([]*kmod, error) {
	var out []*kmod
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, from string) error
	visit = func(name, from string) error {
		name = strings.ReplaceAll(name, "-", "_")
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		case 2:
			return nil
		}
		m, ok := all[name]
		if !ok {
			if builtin[name] {
				state[name] = 2
				return nil
			}
			if from != "" {
				return fmt.Errorf("module %s (needed by %s) is not in the kernel package", name, from)
			}
			return fmt.Errorf("module %s is not in the kernel package", name)
		}
		state[name] = 1
		for _, d := range m.depends {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		out = append(out, m)
		return nil
	}
	for _, w := range want {
		if err := visit(w, ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// kernelPackage is what the build takes from the kernel .deb.
type kernelPackage struct {
	release string
	vmlinuz []byte
	// extra are files of /lib/modules/<release>/ depmod reads besides the
	// modules: modules.builtin, modules.builtin.modinfo, modules.order.
	extra   map[string][]byte
	modules map[string]*kmod
}

// readKernelDeb reads the kernel image and modules from the data of a
// linux-image .deb (as `dpkg-deb --fsys-tarfile` gives it).
func readKernelDeb(r io.Reader) (*kernelPackage, error) {
	kp := &kernelPackage{modules: map[string]*kmod{}, extra: map[string][]byte{}}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("kernel package: %w", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		switch {
		case strings.HasPrefix(name, "boot/vmlinuz-"):
			if kp.vmlinuz, err = io.ReadAll(tr); err != nil {
				return nil, err
			}
			kp.release = strings.TrimPrefix(name, "boot/vmlinuz-")
		case strings.HasPrefix(name, "lib/modules/") || strings.HasPrefix(name, "usr/lib/modules/"):
			rest := strings.TrimPrefix(strings.TrimPrefix(name, "usr/"), "lib/modules/")
			_, rel, ok := strings.Cut(rest, "/")
			if !ok {
				continue
			}
			switch {
			case rel == "modules.builtin" || rel == "modules.builtin.modinfo" || rel == "modules.order":
				if kp.extra[rel], err = io.ReadAll(tr); err != nil {
					return nil, err
				}
			case strings.HasSuffix(rel, ".ko"):
				b, err := io.ReadAll(tr)
				if err != nil {
					return nil, err
				}
				m, err := newKmod(rel, b)
				if err != nil {
					return nil, err
				}
				kp.modules[m.name] = m
			}
		}
	}
	if kp.vmlinuz == nil {
		return nil, errors.New("kernel package has no boot/vmlinuz-*")
	}
	if len(kp.modules) == 0 {
		return nil, errors.New("kernel package has no uncompressed modules (*.ko)")
	}
	return kp, nil
}

// builtinModules parses modules.builtin (paths of built-in modules).
func builtinModules(b []byte) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.TrimSpace(sc.Text()); f != "" {
			out[strings.ReplaceAll(strings.TrimSuffix(path.Base(f), ".ko"), "-", "_")] = true
		}
	}
	return out
}

// aptDownload downloads pkgs (name=version) with the machine's apt into dir
// and returns the .deb files in the same order.
func aptDownload(ctx context.Context, dir string, pkgs ...string) ([]string, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(dctx, "apt-get", append([]string{"download", "-q"}, pkgs...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("apt-get download %s: %w: %s", strings.Join(pkgs, " "), err, strings.TrimSpace(stderr.String()))
	}
	var debs []string
	for _, p := range pkgs {
		name, _, _ := strings.Cut(p, "=")
		m, _ := filepath.Glob(filepath.Join(dir, name+"_*.deb"))
		if len(m) != 1 {
			return nil, fmt.Errorf("apt-get download %s: %d .deb files in %s", name, len(m), dir)
		}
		debs = append(debs, m[0])
	}
	return debs, nil
}

// readDeb streams the file system tree of a .deb (dpkg-deb --fsys-tarfile)
// to read.
func readDeb(ctx context.Context, deb string, read func(io.Reader) error) error {
	x := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	stdout, err := x.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	x.Stderr = &stderr
	if err := x.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	rerr := read(stdout)
	_, _ = io.Copy(io.Discard, stdout)
	werr := x.Wait()
	if rerr != nil {
		return fmt.Errorf("%s: %w", filepath.Base(deb), rerr)
	}
	if werr != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", deb, werr, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// debProgram is a file of a package that goes into the guest.
type debProgram struct {
	path string // in the package, e.g. /sbin/modprobe
	link string // symlink target, or "" for a regular file
	mode os.FileMode
	data []byte
}

// debPrograms reads what of a package's tree the guest gets: programs and
// their symlinks in bin and sbin directories, and modprobe.d files.
func debPrograms(r io.Reader) ([]debProgram, error) {
	var out []debProgram
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		p := path.Clean("/" + hdr.Name)
		dir := path.Dir(p)
		switch dir {
		case "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/lib/modprobe.d", "/usr/lib/modprobe.d":
		default:
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			out = append(out, debProgram{path: p, link: hdr.Linkname})
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			out = append(out, debProgram{path: p, mode: hdr.FileInfo().Mode().Perm(), data: b})
		}
	}
}

// buildVMAssets writes vmlinuz, initrd.cpio and release into dir.
func buildVMAssets(ctx context.Context, in *vmInputs, dir string) error {
	image, imageVersion, err := resolveKernelPackage(ctx, in.kernelPkg)
	if err != nil {
		return err
	}
	debs, err := aptDownload(ctx, dir, append([]string{image + "=" + imageVersion}, in.pkgs...)...)
	if err != nil {
		return err
	}
	var kp *kernelPackage
	if err := readDeb(ctx, debs[0], func(r io.Reader) (err error) {
		kp, err = readKernelDeb(r)
		return err
	}); err != nil {
		return err
	}
	// Package programs are unpacked into pkgroot (ldd and depmod run them
	// here), then copied into the archive.
	pkgroot := filepath.Join(dir, "pkgroot")
	files := append([]hostFile{}, in.files...)
	links := map[string]string{}
	for _, deb := range debs[1:] {
		var progs []debProgram
		if err := readDeb(ctx, deb, func(r io.Reader) (err error) {
			progs, err = debPrograms(r)
			return err
		}); err != nil {
			return err
		}
		for _, p := range progs {
			if p.link != "" {
				links[mergedUsr(p.path)] = p.link
				continue
			}
			src := filepath.Join(pkgroot, p.path)
			if err := writeFile(src, p.data, p.mode); err != nil {
				return err
			}
			if p.mode&0o111 == 0 {
				files = append(files, hostFile{src: src, dst: mergedUsr(p.path)})
				continue
			}
			fs, err := withLibraries(ctx, src)
			if err != nil {
				return err
			}
			fs[0].dst = mergedUsr(p.path)
			files = append(files, fs...)
		}
	}
	defer os.RemoveAll(pkgroot)
	for _, d := range debs {
		_ = os.Remove(d)
	}
	busybox := filepath.Join(pkgroot, "bin", "busybox")
	out, err := runCmd(ctx, "", busybox, "--list-full")
	if err != nil {
		return fmt.Errorf("busybox applets: %w", err)
	}
	want := append(append([]string{}, vmBootModules...), vmExtraModules...)
	sriov, err := vmNetdevsim(ctx, in, kp, image, imageVersion, filepath.Join(dir, "netdevsim"))
	if err != nil {
		return err
	}
	if sriov == "" {
		want = append(want, "netdevsim")
	}
	builtin := builtinModules(kp.extra["modules.builtin"])
	mods, err := moduleClosure(kp.modules, builtin, want)
	if err != nil {
		return err
	}
	t := newCpioTree()
	if err := vmUserland(t, files, links, strings.Fields(string(out)), image+" "+imageVersion); err != nil {
		return err
	}
	if sriov == "" {
		err = t.File("/etc/runbook-lab/sriov", []byte(VMSriovPF+"\n"), 0o644)
	} else {
		err = t.File("/etc/runbook-lab/sriov-skip", []byte(sriov+"\n"), 0o644)
	}
	if err != nil {
		return err
	}
	if err := vmKernelModules(ctx, t, kp, mods, filepath.Join(pkgroot, "bin", "kmod"), filepath.Join(dir, "stage")); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "vmlinuz"), kp.vmlinuz, 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "initrd.cpio"))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if _, err := t.WriteTo(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "release"), []byte(kp.release+"\n"), 0o644)
}

// vmKernelModules adds mods to t with the index files kmod's depmod makes
// for them (run here, from the package, on a staging copy), the boot list
// and the modprobe.d options.
func vmKernelModules(ctx context.Context, t *cpioTree, kp *kernelPackage, mods []*kmod, kmodBin, stage string) error {
	defer os.RemoveAll(stage)
	mdir := filepath.Join(stage, "lib", "modules", kp.release)
	for _, m := range mods {
		if err := writeFile(filepath.Join(mdir, m.rel), m.data, 0o644); err != nil {
			return err
		}
	}
	for name, b := range kp.extra {
		if err := writeFile(filepath.Join(mdir, name), b, 0o644); err != nil {
			return err
		}
	}
	// kmod acts by the name it is run as.
	depmod := filepath.Join(stage, "depmod")
	if err := os.Symlink(kmodBin, depmod); err != nil {
		return err
	}
	if _, err := runCmd(ctx, "", depmod, "-b", stage, kp.release); err != nil {
		return err
	}
	err := filepath.WalkDir(mdir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(mdir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return t.File("/usr/lib/modules/"+kp.release+"/"+filepath.ToSlash(rel), b, 0o644)
	})
	if err != nil {
		return err
	}
	var opts strings.Builder
	names := make([]string, 0, len(vmModuleOptions))
	for n := range vmModuleOptions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&opts, "options %s %s\n", n, vmModuleOptions[n])
	}
	var boot strings.Builder
	builtin := builtinModules(kp.extra["modules.builtin"])
	for _, n := range vmBootModules {
		if !builtin[n] {
			boot.WriteString(n + "\n")
		}
	}
	if err := t.File("/etc/modprobe.d/runbook-lab.conf", []byte("# Written by testenv (vm tier), as a systemd Debian has it.\n"+opts.String()), 0o644); err != nil {
		return err
	}
	return t.File("/etc/runbook-lab/modules", []byte(boot.String()), 0o644)
}
