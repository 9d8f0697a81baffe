package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// A layer is an optional set of packages over the systemd tier's base tree,
// for the few tests that need heavy software (libvirt and QEMU) every other
// host can do without. It is cached as an overlayfs upper directory made by
// installing the packages with apt-get in a chroot of the base tree mounted
// through an overlay: only what the packages add or change lands in it, and
// hosts of a lab with the layer mount it as an extra lower directory above
// the base tree. Each layer is keyed by a hash of the base tree's hash, the
// layers below it and its own recipe, so it is rebuilt only when one of them
// changes; labs without layers are untouched.
type layerDef struct {
	// packages are installed with --no-install-recommends.
	packages []string
	// recipe changes whenever customize changes what it writes.
	recipe string
	// customize adjusts the merged tree after the install (may be nil).
	customize func(root string) error
}

// LayerLibvirt gives hosts libvirt's daemon and virsh with the QEMU driver
// and a QEMU for x86 guests. Lab hosts have no /dev/kvm, so domains are of
// type "qemu"; the lab defines domains, it does not boot them.
const LayerLibvirt = "libvirt"

var layerDefs = map[string]layerDef{
	LayerLibvirt: {
		packages:  []string{"libvirt-daemon-system", "libvirt-daemon-driver-qemu", "libvirt-clients", "qemu-system-x86"},
		recipe:    "libvirt-2",
		customize: customizeLibvirt,
	},
}

// Layers lists the names of the optional layers a systemd lab can have.
func Layers() []string {
	names := make([]string, 0, len(layerDefs))
	for n := range layerDefs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func checkLayers(tier TierName, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if tier != TierSystemd && tier != TierVM {
		return fmt.Errorf("layers %v need the %s tier (or %s with the %s userland), not %s", names, TierSystemd, TierVM, VMUserlandSystemd, tier)
	}
	for i, n := range names {
		if _, ok := layerDefs[n]; !ok {
			return fmt.Errorf("unknown lab layer %q (have %s)", n, strings.Join(Layers(), ", "))
		}
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("lab layer %q given twice", n)
		}
	}
	return nil
}

// layerHashes returns the cache key of each of the layers stacked in order on
// the base tree: each covers everything below it.
func layerHashes(names []string) []string {
	below := baseHash()
	out := make([]string, len(names))
	for i, n := range names {
		d := layerDefs[n]
		h := sha256.New()
		fmt.Fprintf(h, "layer\n%s\n%s\n%s\n%s\n", below, n, d.recipe, strings.Join(d.packages, ","))
		below = hex.EncodeToString(h.Sum(nil))[:16]
		out[i] = below
	}
	return out
}

// layerDir is where a layer is cached: <cache>/layer-<name>-<hash>.
func layerDir(name, hash string) string {
	return filepath.Join(baseCacheDir, "layer-"+name+"-"+hash)
}

// LayersBuilt reports whether the named layers (in this order) and the base
// tree under them are already cached.
func LayersBuilt(names []string) bool {
	if !exists(filepath.Join(filepath.Dir(BaseTreePath()), "complete")) {
		return false
	}
	for i, h := range layerHashes(names) {
		if !exists(filepath.Join(layerDir(names[i], h), "complete")) {
			return false
		}
	}
	return true
}

// EnsureLayers builds the base tree and the named layers where they are not
// cached yet and returns the layers' directories, bottom first. Tests call it
// (through Start) before bringing a lab up, so that a layer that cannot be
// built here (no mirror reachable) skips a test instead of failing it.
func EnsureLayers(ctx context.Context, names []string, logf func(string, ...any)) ([]string, error) {
	if err := checkLayers(TierSystemd, names); err != nil {
		return nil, err
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	base, err := ensureBase(ctx, logf)
	if err != nil {
		return nil, err
	}
	lowers := []string{base}
	var dirs []string
	for i, h := range layerHashes(names) {
		dir, err := ensureLayer(ctx, names[i], h, lowers, logf)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, dir)
		lowers = append([]string{dir}, lowers...)
	}
	return dirs, nil
}

// layerBuildScript mounts the tree the layer goes on (lowerdirs, top first)
// with a fresh upper directory, installs the packages in a chroot of it and
// leaves the upper directory as the layer. It runs in a private mount
// namespace, so every mount dies with it. Package lists and downloaded .debs
// go to tmpfs and never into the layer; policy-rc.d keeps maintainer scripts
// from starting daemons on the build machine. apt reads the machine's mirror
// from a sources list the caller writes into the build's /tmp.
const layerBuildScript = `set -eu
lower=$1 d=$2 sources=$3
shift 3
mkdir -p "$d/upper" "$d/work" "$d/root"
mount -t overlay lab-layer -o "lowerdir=$lower,upperdir=$d/upper,workdir=$d/work" "$d/root"
r=$d/root
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
for m in tmp run var/cache/apt/archives var/lib/apt/lists; do mount -t tmpfs lab-layer "$r/$m"; done
mkdir -p "$r/var/cache/apt/archives/partial" "$r/var/lib/apt/lists/partial"
cp "$sources" "$r/tmp/sources.list"
mount --bind /etc/resolv.conf "$r/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
chmod 755 "$r/usr/sbin/policy-rc.d"
apt() {
  chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    apt-get -q -o Dir::Etc::SourceList=/tmp/sources.list -o Dir::Etc::SourceParts=/nonexistent "$@"
}
apt update
apt -y --no-install-recommends install "$@"
rm -f "$r/usr/sbin/policy-rc.d"
`

func ensureLayer(ctx context.Context, name, hash string, lowers []string, logf func(string, ...any)) (string, error) {
	def := layerDefs[name]
	cache := layerDir(name, hash)
	upper := filepath.Join(cache, "upper")
	done := filepath.Join(cache, "complete")
	if exists(done) {
		return upper, nil
	}
	unlock, err := lockFile(ctx, cache+".lock")
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", name, err)
	}
	defer unlock()
	if exists(done) {
		return upper, nil
	}
	mirror, _, err := aptMirror(baseSuite)
	if err != nil {
		return "", err
	}
	_ = os.RemoveAll(cache)
	build := cache + ".build"
	_ = os.RemoveAll(build)
	if err := os.MkdirAll(build, 0o755); err != nil {
		return "", fmt.Errorf("layer %s: %w", name, err)
	}
	defer os.RemoveAll(build)
	// The keyring the machine names may not exist inside the tree; apt there
	// trusts the tree's own Debian archive keys.
	sources := filepath.Join(build, "sources.list")
	if err := os.WriteFile(sources, []byte(fmt.Sprintf("deb %s %s main\n", mirror, baseSuite)), 0o644); err != nil {
		return "", fmt.Errorf("layer %s: %w", name, err)
	}
	logf("building lab layer %s (%s) from %s (once; cached in %s)", name, strings.Join(def.packages, " "), mirror, cache)
	start := time.Now()
	bctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	args := append([]string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c", layerBuildScript, "sh",
		strings.Join(lowers, ":"), build, sources}, def.packages...)
	if out, err := runCmd(bctx, "", "unshare", args...); err != nil {
		return "", fmt.Errorf("layer %s: %w\n%s", name, err, tail(string(out), 3000))
	}
	if def.customize != nil {
		// The upper directory alone is the layer: what customize writes
		// there shadows the trees below.
		if err := def.customize(filepath.Join(build, "upper")); err != nil {
			return "", fmt.Errorf("layer %s: customize: %w", name, err)
		}
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("layer %s: %w", name, err)
	}
	if err := os.Rename(filepath.Join(build, "upper"), upper); err != nil {
		return "", fmt.Errorf("layer %s: %w", name, err)
	}
	if err := os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("layer %s: %w", name, err)
	}
	logf("layer %s built in %s", name, time.Since(start).Round(100*time.Millisecond))
	return upper, nil
}

// customizeLibvirt makes guests startable in a container: the container's
// cgroup hierarchy is read-only apart from its own subtree, so QEMU's driver
// must not try to make cgroups of its own (guests then stay in libvirtd's).
// Lab tests start guests paused at most, for a domain that is running.
// libvirt-guests would suspend or stop guests when the host stops; lab hosts
// are killed, and it would only slow their boot.
func customizeLibvirt(upper string) error {
	conf := filepath.Join(upper, "etc", "libvirt", "qemu.conf")
	f, err := os.OpenFile(conf, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("\n# Lab host (testenv): no cgroups of QEMU's own inside the container.\ncgroup_controllers = [ ]\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return maskUnits(upper, "libvirt-guests.service")
}

// maskUnits links units to /dev/null in the tree at root.
func maskUnits(root string, units ...string) error {
	dir := filepath.Join(root, "etc", "systemd", "system")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, u := range units {
		link := filepath.Join(dir, u)
		_ = os.Remove(link)
		if err := os.Symlink("/dev/null", link); err != nil {
			return err
		}
	}
	return nil
}
