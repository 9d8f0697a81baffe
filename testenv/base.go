package testenv

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The systemd tier's base tree: Debian bookworm made by debootstrap once and
// kept under baseCacheDir/<hash>/rootfs, where the hash covers everything that
// shapes the tree, so a changed package list builds a new one.
const (
	baseCacheDir = "/var/cache/runbook-lab"
	baseSuite    = "bookworm"
	// baseRecipe changes whenever customizeBase changes what it writes.
	baseRecipe = "recipe-2"
)

// basePackages is what a systemd-tier host has besides debootstrap's minbase.
var basePackages = []string{
	"systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server",
	"network-manager", "firewalld", "selinux-utils", "policycoreutils",
	"iproute2", "ethtool", "ifupdown", "netbase", "kmod", "udev", "procps",
	// ifenslave: ifupdown's bond-* options are its hook scripts; a Debian host that bonds
	// with ifupdown has it (without it a bond written for ifupdown does not come up at boot).
	"ifenslave",
	// bridge-utils: likewise for ifupdown's bridge_* options (the bridge module writes them).
	"bridge-utils",
	// iptables: a stock EL hypervisor has it, and the firewall module flushes and saves it.
	"iptables",
}

func baseHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", baseSuite, baseRecipe, strings.Join(basePackages, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// BaseTreePath is where the systemd tier's base tree is (or will be) cached.
func BaseTreePath() string { return filepath.Join(baseCacheDir, baseHash(), "rootfs") }

// ensureBase returns the cached base tree, building it first if needed. A
// file lock makes concurrent labs (parallel test packages) build it once.
func ensureBase(ctx context.Context, logf func(string, ...any)) (string, error) {
	dir := filepath.Join(baseCacheDir, baseHash())
	rootfs := filepath.Join(dir, "rootfs")
	done := filepath.Join(dir, "complete")
	if exists(done) {
		return rootfs, nil
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", fmt.Errorf("base tree: %w", err)
	}
	defer unlock()
	if exists(done) { // built by whoever held the lock before us
		return rootfs, nil
	}
	mirror, keyring, err := aptMirror(baseSuite)
	if err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, "rootfs.tmp")
	_ = os.RemoveAll(tmp)
	_ = os.RemoveAll(rootfs)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("base tree: %w", err)
	}
	logf("building the systemd tier base tree with debootstrap from %s (once; cached in %s)", mirror, dir)
	start := time.Now()
	args := []string{"--variant=minbase", "--include=" + strings.Join(basePackages, ",")}
	if keyring != "" {
		args = append(args, "--keyring="+keyring)
	}
	args = append(args, baseSuite, tmp, mirror)
	bctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	if _, err := runCmd(bctx, "", "debootstrap", args...); err != nil {
		log, _ := os.ReadFile(filepath.Join(tmp, "debootstrap", "debootstrap.log"))
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("debootstrap: %w\n%s", err, tail(string(log), 2000))
	}
	if err := customizeBase(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("customize base tree: %w", err)
	}
	if err := os.Rename(tmp, rootfs); err != nil {
		return "", fmt.Errorf("base tree: %w", err)
	}
	if err := os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("base tree: %w", err)
	}
	logf("base tree built in %s", time.Since(start).Round(100*time.Millisecond))
	return rootfs, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// customizeBase turns the debootstrap result into a lab host template.
func customizeBase(root string) error {
	p := func(rel string) string { return filepath.Join(root, rel) }
	// Host identity is per host (written into each host's overlay).
	keys, _ := filepath.Glob(p("etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	for _, f := range []string{"etc/hostname", "etc/machine-id"} {
		if err := os.WriteFile(p(f), nil, 0o644); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/ssh/sshd_config.d/runbook-lab.conf": `# Lab host: key login for root only, written by testenv.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 200:30:400
MaxSessions 100
`,
		// eth0 is the lab's management link, configured from outside: if
		// NetworkManager took it over, the lab would lose the host. Data NICs
		// stay NetworkManager's, without automatic DHCP profiles.
		"etc/NetworkManager/conf.d/runbook-lab.conf": `[main]
no-auto-default=*

[keyfile]
unmanaged-devices=interface-name:eth0
`,
		"etc/network/interfaces": `# interfaces(5) file used by ifup(8) and ifdown(8)
auto lo
iface lo inet loopback

source /etc/network/interfaces.d/*
`,
		// The lab has no DNS and no way out.
		"etc/resolv.conf": "",
	}
	for rel, content := range files {
		if err := os.MkdirAll(filepath.Dir(p(rel)), 0o755); err != nil {
			return err
		}
		_ = os.Remove(p(rel)) // resolv.conf may be a symlink
		if err := os.WriteFile(p(rel), []byte(content), 0o644); err != nil {
			return err
		}
	}
	// Timers that would try to reach a mirror, and the console getty nobody
	// logs in on.
	for _, u := range []string{"apt-daily.timer", "apt-daily-upgrade.timer", "console-getty.service"} {
		link := p("etc/systemd/system/" + u)
		_ = os.Remove(link)
		if err := os.Symlink("/dev/null", link); err != nil {
			return err
		}
	}
	return nil
}

// aptMirror finds the Debian mirror the machine's apt uses for suite, from
// /etc/apt/sources.list and /etc/apt/sources.list.d (one-line and deb822
// formats), with the keyring named by Signed-By if any.
func aptMirror(suite string) (mirror, keyring string, err error) {
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(files, more...)
	more, _ = filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, more...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var srcs []aptSource
		if strings.HasSuffix(f, ".sources") {
			srcs = parseDeb822(string(b))
		} else {
			srcs = parseOneLine(string(b))
		}
		for _, s := range srcs {
			if s.matches(suite) {
				return s.uri, s.signedBy, nil
			}
		}
	}
	return "", "", errors.New("no apt source for Debian " + suite + " main in /etc/apt/sources.list(.d): the systemd tier builds its base tree from the mirror apt uses")
}

type aptSource struct {
	types, uris, suites, components []string
	signedBy, uri                   string
	enabled                         bool
}

func (s aptSource) matches(suite string) bool {
	if !s.enabled || !contains(s.types, "deb") || !contains(s.suites, suite) || !contains(s.components, "main") {
		return false
	}
	for _, u := range s.uris {
		if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
			return true
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func parseDeb822(text string) []aptSource {
	var out []aptSource
	for _, para := range strings.Split(text, "\n\n") {
		s := aptSource{enabled: true}
		sc := bufio.NewScanner(strings.NewReader(para))
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "#") || !strings.Contains(line, ":") {
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "types":
				s.types = strings.Fields(v)
			case "uris":
				s.uris = strings.Fields(v)
			case "suites":
				s.suites = strings.Fields(v)
			case "components":
				s.components = strings.Fields(v)
			case "signed-by":
				s.signedBy = v
			case "enabled":
				s.enabled = v != "no"
			}
		}
		s.pick()
		out = append(out, s)
	}
	return out
}

func parseOneLine(text string) []aptSource {
	var out []aptSource
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		s := aptSource{enabled: true, types: []string{f[0]}}
		rest := f[1:]
		if strings.HasPrefix(rest[0], "[") { // options: [signed-by=... arch=...]
			for len(rest) > 0 {
				opt := strings.Trim(rest[0], "[]")
				if k, v, ok := strings.Cut(opt, "="); ok && k == "signed-by" {
					s.signedBy = v
				}
				done := strings.HasSuffix(rest[0], "]")
				rest = rest[1:]
				if done {
					break
				}
			}
		}
		if len(rest) < 3 {
			continue
		}
		s.uris, s.suites, s.components = rest[:1], rest[1:2], rest[2:]
		s.pick()
		out = append(out, s)
	}
	return out
}

func (s *aptSource) pick() {
	// Only a keyring file can be passed on; an inline key block cannot.
	if !strings.HasPrefix(s.signedBy, "/") || !exists(s.signedBy) {
		s.signedBy = ""
	}
	for _, u := range s.uris {
		if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
			s.uri = strings.TrimSuffix(u, "/")
			return
		}
	}
}
