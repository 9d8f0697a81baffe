package facts

import (
	"slices"
	"strconv"
	"strings"

	"github.com/runbook/runbook/modules/hostfs"

	"github.com/runbook/runbook/modules/internal/selinuxconf"
)

// parseOSRelease reads os-release(5): KEY=value lines with shell quoting.
func parseOSRelease(text string) map[string]string {
	return hostfs.ParseEnvFile(text)
}

// osFamily groups distributions the way runbooks branch on them.
func osFamily(id string, like []string) string {
	for _, x := range append([]string{id}, like...) {
		switch x {
		case "rhel", "centos", "rocky", "almalinux", "alma", "fedora", "ol", "redhat", "scientific", "eurolinux", "circle", "amzn":
			return "redhat"
		case "debian", "ubuntu", "linuxmint", "raspbian":
			return "debian"
		case "suse", "sles", "sled", "opensuse", "opensuse-leap", "opensuse-tumbleweed":
			return "suse"
		}
	}
	return id
}

// leadingInt parses the digits a version string starts with ("8.9" → 8, "12" → 12).
func leadingInt(s string) (int, bool) {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(s[:end])
	return n, err == nil
}

func gatherOS(f rootFS) map[string]any {
	text, ok := f.read("/etc/os-release")
	if !ok {
		text, _ = f.read("/usr/lib/os-release")
	}
	rel := parseOSRelease(text)
	id := strings.ToLower(rel["ID"])
	like := strings.Fields(strings.ToLower(rel["ID_LIKE"]))
	major, ok := leadingInt(rel["VERSION_ID"])
	likeAny := make([]any, len(like))
	for i, l := range like {
		likeAny[i] = l
	}
	return map[string]any{
		"id":            id,
		"id_like":       likeAny,
		"version_id":    rel["VERSION_ID"],
		"version_major": nullable(major, ok),
		"name":          rel["NAME"],
		"pretty_name":   rel["PRETTY_NAME"],
		"family":        osFamily(id, like),
	}
}

// kernelArch returns the kernel release and the machine architecture. procfs holds both on
// current kernels (kernel.arch since 6.1); uname fills them in on the running system.
func kernelArch(f rootFS) (string, string) {
	release := f.str("/proc/sys/kernel/osrelease")
	arch := f.str("/proc/sys/kernel/arch")
	if f.real && (release == "" || arch == "") {
		r, m := uname()
		if release == "" {
			release = r
		}
		if arch == "" {
			arch = m
		}
	}
	return release, arch
}

// hostname is the kernel's (UTS namespace) name, falling back to /etc/hostname.
func hostname(f rootFS) string {
	if h := f.str("/proc/sys/kernel/hostname"); h != "" {
		return h
	}
	return f.str("/etc/hostname")
}

// initSystem names the service manager: systemd creates /run/systemd/system when it boots
// the system (sd_booted's test); otherwise PID 1's name and the files of each init tell.
func initSystem(f rootFS) string {
	if f.isDir("/run/systemd/system") {
		return "systemd"
	}
	switch comm := f.str("/proc/1/comm"); comm {
	case "systemd":
		return "systemd"
	case "openrc-init":
		return "openrc"
	case "init":
		switch {
		case f.isDir("/run/openrc") || f.exists("/sbin/openrc"):
			return "openrc"
		case f.exists("/etc/inittab"):
			return "sysv"
		case f.isDir("/etc/init") && f.exists("/sbin/initctl"):
			return "upstart"
		}
	}
	return "unknown"
}

// gatherSELinux reports the runtime mode from the kernel and the persistent one from
// /etc/selinux/config, with the same meanings as the selinux module: runtime is
// "enforcing" or "permissive" when selinuxfs is mounted; "disabled" when the kernel has
// SELinux but does not run it (selinux=0 on the command line, listed among the security
// modules, or selinuxfs registered but not mounted); "not available" otherwise.
func gatherSELinux(f rootFS) map[string]any {
	// As the boot reads it (selinuxconf), not as a shell would: libselinux keeps quotes.
	persistent, policy := selinuxconf.Parse([]byte(f.str("/etc/selinux/config")))
	mnt := selinuxfsMount(f)
	enforce, mounted := "", false
	if mnt != "" {
		enforce, mounted = f.read(mnt + "/enforce")
	}
	runtime := "not available"
	switch {
	case mounted && enforce == "1":
		runtime = "enforcing"
	case mounted:
		runtime = "permissive"
	case slices.Contains(strings.Fields(f.str("/proc/cmdline")), "selinux=0"),
		slices.Contains(strings.Split(f.str("/sys/kernel/security/lsm"), ","), "selinux"),
		slices.Contains(strings.Fields(f.str("/proc/filesystems")), "selinuxfs"):
		runtime = "disabled"
	}
	return map[string]any{
		"available":  mounted,
		"runtime":    runtime,
		"persistent": persistent,
		"policy":     policy,
	}
}

// selinuxfsMount returns where selinuxfs is mounted ("" when it is not), from the mount
// table; without one (a fixture tree) the usual mount point is asked.
func selinuxfsMount(f rootFS) string {
	text, ok := f.read("/proc/self/mountinfo")
	if !ok {
		if f.exists("/sys/fs/selinux/enforce") {
			return "/sys/fs/selinux"
		}
		return ""
	}
	for _, line := range strings.Split(text, "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) >= 5 && len(b) >= 1 && b[0] == "selinuxfs" {
			// The table escapes white space as octal (\040).
			return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(a[4])
		}
	}
	return ""
}
