package testenv

import (
	"fmt"
	"os"
	"path"
	"strings"
)

// What the vm tier's initramfs holds besides binaries and modules. Per-host
// files (hostname, host key, addresses, authorized_keys) come in a second
// archive appended for each host; see vmTier.prepareHost.

// vmInittab: busybox init runs rcS once and then only reaps orphans.
const vmInittab = `# Written by testenv (vm tier).
::sysinit:/etc/init.d/rcS
::ctrlaltdel:/sbin/poweroff -f
::shutdown:/bin/umount -a -r
`

// vmSSHDConfig is the main sshd's configuration (port 22 on eth0).
const vmSSHDConfig = `# Lab host sshd configuration, written by testenv (vm tier).
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AcceptEnv LANG LC_*
MaxStartups 200:30:400
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
`

// vmCtlSSHDConfig is the lab's control sshd: it runs in the guest's "labctl"
// network namespace, reachable only through QEMU's user-mode NIC from the
// host's lab namespace, with its own key file, so Break (stop) or a module
// that rewrites the root's keys or sshd_config cannot cut the lab off.
const vmCtlSSHDConfig = `# The lab's control channel, written by testenv (vm tier).
Port 22
ListenAddress ` + vmCtlGuestIP + `
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd-labctl.pid
PermitRootLogin prohibit-password
AuthorizedKeysFile /etc/runbook-lab/ctl_authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 200:30:400
MaxSessions 100
ForceCommand /usr/lib/runbook-lab/ctl
`

// vmCtlScript runs each control command in the namespaces of PID 1, so it
// sees the host as any login does.
const vmCtlScript = `#!/bin/sh
# Control commands of the lab run in init's network namespace.
if [ -z "${SSH_ORIGINAL_COMMAND:-}" ]; then
	exec nsenter -t 1 -n -- /bin/bash -l
fi
exec nsenter -t 1 -n -- /bin/sh -c "$SSH_ORIGINAL_COMMAND"
`

// Guest side of the control NIC (QEMU user-mode networking's defaults).
const (
	vmCtlGuestIP = "10.0.2.15"
	vmCtlPrefix  = "24"
)

var vmEtcFiles = map[string]string{
	"/etc/passwd": `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
sshd:x:100:65534::/run/sshd:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`,
	"/etc/group": `root:x:0:
daemon:x:1:
tty:x:5:
adm:x:4:
nogroup:x:65534:
`,
	"/etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\nprotocols: files\nservices: files\n",
	"/etc/shells":        "/bin/sh\n/usr/bin/sh\n/bin/bash\n/usr/bin/bash\n",
	"/etc/profile": `# Written by testenv (vm tier).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
`,
	"/etc/resolv.conf":          "",
	"/etc/fstab":                "",
	"/etc/inittab":              vmInittab,
	"/etc/ssh/sshd_config":      vmSSHDConfig,
	"/etc/runbook-lab/sshd_ctl": vmCtlSSHDConfig,
}

// vmOSRelease is this machine's os-release (the userland comes from it) with
// the variant that says what the guest is.
func vmOSRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		b = []byte("ID=debian\nNAME=\"Debian GNU/Linux\"\n")
	}
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "VARIANT=") || strings.HasPrefix(line, "VARIANT_ID=") {
			continue
		}
		out.WriteString(line + "\n")
	}
	out.WriteString("VARIANT=\"runbook lab micro-VM\"\nVARIANT_ID=runbook-lab-vm\n")
	return out.String()
}

// vmUserland adds the userland to t: the layout, binaries with their
// libraries, busybox applets, /etc and the boot script.
func vmUserland(t *cpioTree, files []hostFile, links map[string]string, applets []string, kernel string) error {
	for _, d := range []struct {
		p    string
		perm uint32
	}{
		{"/usr/bin", 0o755}, {"/usr/sbin", 0o755}, {"/usr/lib", 0o755}, {"/usr/lib64", 0o755},
		{"/usr/local/bin", 0o755}, {"/usr/local/sbin", 0o755},
		{"/dev", 0o755}, {"/proc", 0o555}, {"/sys", 0o555}, {"/run", 0o755}, {"/tmp", 0o1777},
		{"/root", 0o700}, {"/home", 0o755}, {"/mnt", 0o755}, {"/srv", 0o755}, {"/opt", 0o755},
		{"/etc/ssh", 0o755}, {"/etc/init.d", 0o755}, {"/etc/modprobe.d", 0o755}, {"/etc/runbook-lab", 0o755},
		{"/var/lib", 0o755}, {"/var/log", 0o755}, {"/var/tmp", 0o1777}, {"/var/cache", 0o755},
		{"/var/spool", 0o755}, {"/var/empty", 0o755},
	} {
		if err := t.Dir(d.p, d.perm); err != nil {
			return err
		}
	}
	for link, target := range map[string]string{
		"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64",
		"/var/run": "/run", "/etc/mtab": "/proc/self/mounts", "/init": "/usr/sbin/init",
	} {
		if err := t.Symlink(link, target); err != nil {
			return err
		}
	}
	// The kernel opens /dev/console for init before anything is mounted.
	if err := t.CharDev("/dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := t.CharDev("/dev/null", 0o666, 1, 3); err != nil {
		return err
	}
	var busybox string
	for _, f := range files {
		if err := t.CopyFile(f.dst, f.src); err != nil {
			return err
		}
		if path.Base(f.dst) == "busybox" {
			busybox = f.dst
		}
	}
	if busybox == "" {
		return fmt.Errorf("no busybox among the guest's binaries")
	}
	if err := t.Symlink("/usr/bin/sh", "dash"); err != nil {
		return err
	}
	// Real programs win over applets of the same name, wherever they are.
	real := map[string]bool{}
	for _, f := range files {
		real[path.Base(f.dst)] = true
	}
	for p, target := range links {
		if err := t.Symlink(p, target); err != nil {
			return err
		}
		real[path.Base(p)] = true
	}
	for _, a := range applets {
		p := mergedUsr(a)
		name := path.Base(p)
		if real[name] || vmSkipApplets[name] || t.Has(p) {
			continue
		}
		if err := t.Symlink(p, busybox); err != nil {
			return err
		}
	}
	for p, content := range vmEtcFiles {
		if err := t.File(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	generated := []struct {
		p, content string
		perm       uint32
	}{
		{"/etc/shadow", "root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o640},
		{"/etc/os-release", vmOSRelease(), 0o644},
		{"/etc/init.d/rcS", vmRCS, 0o755},
		{"/usr/lib/runbook-lab/ctl", vmCtlScript, 0o755},
		{"/etc/runbook-lab/kernel", kernel + "\n", 0o644},
	}
	for _, f := range generated {
		if err := t.File(f.p, []byte(f.content), f.perm); err != nil {
			return err
		}
	}
	return nil
}
