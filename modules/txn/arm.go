package txn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/hostfs"
)

// The helper's subcommands the armed rollback runs (cmd/runbook-helper).
const (
	CmdRollback = "rollback" // runbook-helper txn rollback --dir DIR --id ID
	CmdWatch    = "watch"    // runbook-helper txn watch --dir DIR --id ID
	CmdBoot     = "boot"     // runbook-helper txn boot --dir DIR
)

// BootUnit is the oneshot unit that, enabled while a transaction is pending, rolls back at
// boot whatever is still pending from the boot before.
const BootUnit = "runbook-txn-boot.service"

// armReal arms j's rollback: a transient systemd timer where systemd is PID 1 of this
// host (same network and mount namespaces as the helper: a lab host in a namespace of a
// machine shares that machine's PID 1, whose timer would restore the wrong interfaces), else
// a detached watchdog process.
func armReal(m *Manager, j *Journal) (Arm, error) {
	helper, err := m.helper()
	if err != nil {
		return Arm{}, err
	}
	if systemdHere() {
		if !plainPath(m.Dir) {
			return Arm{}, fmt.Errorf("the transactions directory %q has characters a unit file would need quoted", m.Dir)
		}
		unit := "runbook-txn-" + j.ID
		// Rounded up: the timer never fires before the deadline the controller was given.
		secs := int((m.Left(j) + time.Second - 1) / time.Second)
		if secs < 1 {
			secs = 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := host.Output(ctx, host.Exec{}, nil, host.Cmd{Argv: []string{"systemd-run", "--quiet",
			"--unit=" + unit, "--description=runbook: roll back transaction " + j.ID + " unless it is confirmed",
			"--on-active=" + strconv.Itoa(secs) + "s", "--timer-property=AccuracySec=1s",
			"--", helper, "txn", CmdRollback, "--dir", m.Dir, "--id", j.ID}})
		if err != nil {
			return Arm{}, err
		}
		a := Arm{How: "systemd", Unit: unit + ".timer"}
		if err := m.enableBootUnit(helper); err == nil {
			a.Boot = true
		}
		return a, nil
	}
	cmd := exec.Command(helper, "txn", CmdWatch, "--dir", m.Dir, "--id", j.ID)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	// Its own session and process group: not the SSH session's, whose end (a hangup, a
	// kill of the group) must not reach it. Standard streams are /dev/null (exec's nil).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Arm{}, fmt.Errorf("start the watchdog: %w", err)
	}
	pid := cmd.Process.Pid
	start, err := procStart(pid)
	go func() { _ = cmd.Wait() }() // reap it if it ends while the helper runs
	if err != nil {
		return Arm{}, fmt.Errorf("read the watchdog's start time: %w", err)
	}
	return Arm{How: "watchdog", PID: pid, Start: start}, nil
}

// disarmReal stops j's armed rollback.
func disarmReal(m *Manager, j *Journal) {
	switch j.Armed.How {
	case "systemd":
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = host.Exec{}.Run(ctx, host.Cmd{Argv: []string{"systemctl", "stop", j.Armed.Unit}})
	case "watchdog":
		// Only the process started then: a PID reused since has another start time. The
		// watchdog would also see the journal gone within a second and end by itself.
		if st, err := procStart(j.Armed.PID); err == nil && st == j.Armed.Start && j.Armed.PID != os.Getpid() {
			_ = syscall.Kill(j.Armed.PID, syscall.SIGTERM)
		}
	}
}

func (m *Manager) helper() (string, error) {
	h := m.Helper
	if h == "" {
		var err error
		if h, err = os.Executable(); err != nil {
			return "", fmt.Errorf("find the helper's executable: %w", err)
		}
	}
	// The path is written into a unit file and run by root later: only plain characters.
	if !plainPath(h) {
		return "", fmt.Errorf("the helper's path %q has characters a unit file would need quoted", h)
	}
	return h, nil
}

// plainPath says p is an absolute path of letters, digits and /._- only: safe in a unit's
// ExecStart= and in argv without quoting.
func plainPath(p string) bool {
	return filepath.IsAbs(p) && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-") == ""
}

// systemdHere says whether systemd is PID 1 of the namespaces the helper runs in.
func systemdHere() bool {
	if comm, ours := host.PID1("net", "mnt"); !ours || comm != "systemd" {
		return false
	}
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return false
	}
	return host.LookPath("systemd-run") != ""
}

func systemdTimerActive(m *Manager, unit string) bool {
	if m.Arm != nil {
		return true // armed by a test's hand: as long as the journal says
	}
	if !strings.HasPrefix(unit, "runbook-txn-") {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := host.Exec{}.Run(ctx, host.Cmd{Argv: []string{"systemctl", "is-active", unit}})
	// Gone only when systemd says so; a systemctl that fails or times out (a busy D-Bus)
	// proves nothing, and rolling back an armed transaction would undo a change in time.
	state := strings.TrimSpace(res.Stdout)
	return err != nil || (state != "inactive" && state != "failed")
}

// bootUnitText is the boot unit: before the network is configured, it restores the files
// of a transaction left pending by the boot before.
func bootUnitText(helper, dir string) string {
	return "# Made by runbook while a network transaction is pending; disabled once none is.\n" +
		"[Unit]\nDescription=runbook: roll back network transactions left pending at the last shutdown\n" +
		"DefaultDependencies=no\nAfter=local-fs.target\nBefore=network-pre.target sysinit.target\nWants=network-pre.target\n" +
		"ConditionPathExists=" + helper + "\n\n" +
		"[Service]\nType=oneshot\nExecStart=" + helper + " txn " + CmdBoot + " --dir " + dir + "\n\n" +
		"[Install]\nWantedBy=sysinit.target\n"
}

func (m *Manager) unitPaths() (unit, link string) {
	etc := filepath.Join(m.Root, "/etc/systemd/system")
	return filepath.Join(etc, BootUnit), filepath.Join(etc, "sysinit.target.wants", BootUnit)
}

// enableBootUnit writes the boot unit and enables it (the link systemctl enable makes; no
// daemon reload is needed for the next boot).
func (m *Manager) enableBootUnit(helper string) error {
	unit, link := m.unitPaths()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	// Both synced: a host that loses power right after the change must find them at boot.
	if err := hostfs.WriteAtomic(unit, []byte(bootUnitText(helper, m.Dir)), hostfs.Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
		return err
	}
	if t, err := os.Readlink(link); err == nil && t == unit {
		return nil
	}
	_ = os.Remove(link)
	if err := os.Symlink(unit, link); err != nil {
		return err
	}
	return syncDir(filepath.Dir(link))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// bootUnitUpdate disables the boot unit once no journal is left.
func (m *Manager) bootUnitUpdate() {
	if m.Arm != nil && m.Root == "" {
		return // tests that arm by hand touch no system paths
	}
	if js, err := m.pending(); err != nil || len(js) > 0 {
		return
	}
	_, link := m.unitPaths()
	_ = os.Remove(link)
}

// procStart returns a process's start time (field 22 of /proc/PID/stat, clock ticks since
// boot), which tells it from a later process given the same PID.
func procStart(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	// After the name: state is field 3, start time field 22.
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, errors.New("process is gone")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Watch is the watchdog's loop: it waits for the deadline of transaction id, ending when the
// journal goes (confirmed) and rolling back when the deadline comes.
func (m *Manager) Watch(id string) (*Outcome, error) {
	for {
		j, err := m.read(id)
		if err != nil || j == nil {
			return nil, err
		}
		left := m.Left(j)
		if left <= 0 {
			return m.RollbackPatiently(id, "no confirmation came before the deadline")
		}
		time.Sleep(min(left, time.Second))
	}
}

// Boot rolls back every transaction made in an earlier boot: the boot unit runs it before the
// network is configured.
func (m *Manager) Boot() ([]Outcome, error) {
	ids, err := m.ids()
	if err != nil || len(ids) == 0 {
		m.bootUnitUpdate()
		return nil, err
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []Outcome
	boot := bootID()
	for _, id := range ids {
		j, err := m.read(id)
		if err != nil || j == nil || j.BootID == boot {
			continue
		}
		o, err := m.rollbackLocked(j, "pending when the host went down: rolled back at boot")
		if o != nil {
			out = append(out, *o)
		}
		if err != nil {
			return out, err
		}
	}
	m.bootUnitUpdate()
	return out, nil
}
