// Package txn makes a change on a host a transaction that undoes itself: before a module
// changes anything it records what it will change (a journal on disk), arms a rollback that
// does not depend on the SSH session or the helper surviving (a systemd timer, or a detached
// watchdog process), and applies. The controller then confirms over a new connection; when
// no confirmation comes before the deadline, the host restores the journal by itself and
// verifies the result. See docs/network-safety.md.
//
// A journal holds the files the change writes (byte for byte, with mode and owner) and, per
// restorer, the runtime state it changes (modules/network registers "network": links,
// addresses, routes). One transaction is pending on a host at a time.
package txn

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

// DefaultDir is where a root helper keeps its transactions.
const DefaultDir = "/var/lib/runbook/transactions"

// DefaultTimeout is how long a transaction waits for its confirmation when the task and the
// run name no other time.
const DefaultTimeout = 60 * time.Second

// Bounds on what a journal may hold: the files a network change writes are small, and a
// journal that grows past these is a bug or an attack, not a configuration.
const (
	maxFiles       = 256
	maxFileBytes   = 4 << 20
	maxJournal     = 32 << 20
	maxOutcomes    = 64
	journalVersion = 1
)

// Journal is one transaction as it is stored on disk before anything changes.
type Journal struct {
	Version  int       `json:"version"`
	ID       string    `json:"id"`
	Module   string    `json:"module"`
	Created  time.Time `json:"created"`
	Deadline time.Time `json:"deadline"`
	// BootDeadline is the deadline on the boot clock (CLOCK_BOOTTIME, nanoseconds), which
	// NTP does not step: within the boot that made it, it is the one that counts (Left).
	BootDeadline int64 `json:"boot_deadline,omitempty"`
	// BootID and NetNS say where the journal was made: a journal from another boot is
	// restored at boot (its runtime state is gone with the boot, its files are not), and one
	// from another network namespace (a lab host sharing the machine's /proc) is never
	// touched from this one.
	BootID string `json:"boot_id"`
	NetNS  string `json:"netns"`
	Armed  Arm    `json:"armed"`
	Files  []File `json:"files,omitempty"`
	// Runtime holds each restorer's snapshot, by the restorer's name.
	Runtime map[string]json.RawMessage `json:"runtime,omitempty"`
}

// Arm says how the rollback was armed.
type Arm struct {
	// How is "systemd" (a transient timer, Unit), "watchdog" (a detached process, PID and
	// Start, its start time in clock ticks since boot) or "none" (tests).
	How   string `json:"how"`
	Unit  string `json:"unit,omitempty"`
	PID   int    `json:"pid,omitempty"`
	Start uint64 `json:"start,omitempty"`
	// Boot says a boot unit was enabled to roll back a transaction still pending at boot.
	Boot bool `json:"boot,omitempty"`
}

// File is a file the change writes or removes, as it was before.
type File struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed"`
	Mode    uint32 `json:"mode,omitempty"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	SHA256  string `json:"sha256,omitempty"`
	Content []byte `json:"content,omitempty"`
}

// Restorer restores and verifies one kind of runtime state from its snapshot.
type Restorer interface {
	// Restore brings the state back to the snapshot, idempotently, and says what it did.
	Restore(snap json.RawMessage) ([]string, error)
	// Verify lists the differences between the state now and the snapshot.
	Verify(snap json.RawMessage) ([]string, error)
}

var (
	regMu     sync.Mutex
	restorers = map[string]Restorer{}
)

// Register makes a restorer known by name; packages register theirs from init.
func Register(name string, r Restorer) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := restorers[name]; dup {
		panic("txn: restorer " + name + " registered twice")
	}
	restorers[name] = r
}

func lookup(name string, own map[string]Restorer) (Restorer, bool) {
	if r, ok := own[name]; ok {
		return r, true
	}
	regMu.Lock()
	defer regMu.Unlock()
	r, ok := restorers[name]
	return r, ok
}

// Manager keeps the transactions of one host in Dir.
type Manager struct {
	Dir string
	// Helper is the executable the armed rollback runs ("" means this one): the helper,
	// from its content-addressed path that only root can write.
	Helper string
	// Arm arms the rollback of a journal; nil arms it for real (arm.go). Disarm undoes it.
	Arm    func(m *Manager, j *Journal) (Arm, error)
	Disarm func(m *Manager, j *Journal) error
	// Restorers are looked up before the registered ones (tests).
	Restorers map[string]Restorer
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Root is prefixed to the system paths the real armer writes (/etc/systemd/system).
	Root string
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// errLocked is a lock not had within its time.
var errLocked = errors.New("lock transactions: held by another helper for 30 s")

// ErrNoTransaction is returned for an id no journal or outcome on this host has.
var ErrNoTransaction = errors.New("no such transaction on this host")

// ErrPending is returned by Begin when another transaction is pending on the host.
var ErrPending = errors.New("another transaction is pending on this host")

func (m *Manager) journalPath(id string) string { return filepath.Join(m.Dir, id+".journal") }
func (m *Manager) outcomePath(id string) string { return filepath.Join(m.Dir, id+".outcome") }

// ValidID says whether id is a transaction id as NewID makes them (24 hex digits), so that
// no id from a request names a path of its choosing.
func ValidID(id string) bool {
	return len(id) == 24 && strings.Trim(id, "0123456789abcdef") == ""
}

// NewID makes a transaction id: the time in hex (ids sort by age) and 8 random bytes. The
// controller makes one per apply of a module that may run a transaction and sends it with
// the request, so that it can ask how that transaction ended even when the answer to the
// apply never reached it.
func NewID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%08x", uint32(time.Now().Unix())) + hex.EncodeToString(b)
}

// ensureDir makes Dir (0700) and refuses one that another user could change: a journal is
// what a root process will write back to /etc.
func (m *Manager) ensureDir() error {
	if m.Dir == "" {
		return errors.New("transactions need a state directory that only root can write (the helper runs as uid " + fmt.Sprint(os.Geteuid()) + "; use become)")
	}
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		return fmt.Errorf("make %s: %w", m.Dir, err)
	}
	return m.checkDir()
}

// haveDir says whether Dir exists, after checking it as ensureDir does: false (and no
// error) when there is none, so there is no transaction either.
func (m *Manager) haveDir() (bool, error) {
	if m.Dir == "" {
		return false, nil
	}
	if _, err := os.Lstat(m.Dir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return true, m.checkDir()
}

// checkDir refuses a Dir that is a link, not a directory, not this user's, or open to
// others: what is in it is written back to system files by root.
func (m *Manager) checkDir() error {
	fi, err := os.Lstat(m.Dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is not a directory that only uid %d can use (mode %v); refusing to keep transactions there", m.Dir, os.Geteuid(), fi.Mode())
	}
	return nil
}

// lock takes the host's transaction lock; unlock releases it. It waits at most 30 seconds,
// the time a rollback takes at most.
func (m *Manager) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(m.Dir, ".lock"), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock transactions: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock transactions: %w", err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errLocked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Snapshot reads the files a change will write or remove, for Begin. Paths are host paths
// (tests give them under a root); a link is followed only when trusted (modules/hostfs).
func Snapshot(paths []string) ([]File, error) {
	if len(paths) > maxFiles {
		return nil, fmt.Errorf("a transaction holds at most %d files, not %d", maxFiles, len(paths))
	}
	var out []File
	for _, p := range paths {
		b, ok, err := hostfs.ReadOptional(p)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", p, err)
		}
		f := File{Path: p, Existed: ok, UID: -1, GID: -1}
		if ok {
			if len(b) > maxFileBytes {
				return nil, fmt.Errorf("snapshot %s: %d bytes is more than a transaction keeps (%d)", p, len(b), maxFileBytes)
			}
			fi, err := hostfs.Stat(p)
			if err != nil || fi == nil {
				return nil, fmt.Errorf("snapshot %s: %v", p, err)
			}
			f.Mode = uint32(fi.Mode().Perm())
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				f.UID, f.GID = int(st.Uid), int(st.Gid)
			}
			f.Content = b
			sum := sha256.Sum256(b)
			f.SHA256 = hex.EncodeToString(sum[:])
		}
		out = append(out, f)
	}
	return out, nil
}

// Begin writes a journal for module's change, with the files as they are now and each
// restorer's runtime snapshot, and arms its rollback for timeout from now. A stale
// transaction left by a crash is rolled back first (its outcome is returned); one still
// armed makes Begin fail with ErrPending.
func (m *Manager) Begin(id, module string, timeout time.Duration, files []File, runtime map[string]json.RawMessage) (*Journal, []Outcome, error) {
	if id == "" {
		id = NewID()
	}
	if !ValidID(id) {
		return nil, nil, fmt.Errorf("%q is not a transaction id", id)
	}
	if err := m.ensureDir(); err != nil {
		return nil, nil, err
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	recovered, err := m.recoverLocked("a transaction left pending by an earlier run, found before a new one")
	if err != nil {
		return nil, recovered, err
	}
	pending, err := m.pending()
	if err != nil {
		return nil, recovered, err
	}
	if len(pending) > 0 {
		p := pending[0]
		return nil, recovered, fmt.Errorf("%w: transaction %s (%s) rolls back by itself at %s unless the run that made it confirms it first; try again after that",
			ErrPending, p.ID, p.Module, p.Deadline.UTC().Format(time.RFC3339))
	}
	if o, err := m.outcome(id); err != nil || o != nil {
		return nil, recovered, fmt.Errorf("transaction %s was used before", id)
	}
	now := m.now()
	j := &Journal{Version: journalVersion, ID: id, Module: module, Created: now.UTC(),
		Deadline: now.Add(timeout).UTC(), BootID: bootID(), NetNS: netNS(), Files: files, Runtime: runtime}
	if b, ok := bootClock(); ok && m.Now == nil {
		j.BootDeadline = b + int64(timeout)
	}
	// The journal is on disk before the armer can look for it, and before any change.
	if err := m.write(j); err != nil {
		return nil, recovered, err
	}
	arm := m.Arm
	if arm == nil {
		arm = armReal
	}
	a, err := arm(m, j)
	if err != nil {
		_ = os.Remove(m.journalPath(j.ID))
		return nil, recovered, fmt.Errorf("arm the rollback: %w", err)
	}
	j.Armed = a
	if err := m.write(j); err != nil {
		m.disarm(j)
		_ = os.Remove(m.journalPath(j.ID))
		return nil, recovered, err
	}
	return j, recovered, nil
}

// AddFiles adds files to pending transaction j, as they are before the change writes them;
// a path already in the journal keeps its first state. The journal on disk has them before
// this returns, so the armed rollback restores them.
func (m *Manager) AddFiles(j *Journal, files []File) error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := m.read(j.ID)
	if err != nil {
		return err
	}
	if cur == nil || m.Left(cur) <= 0 {
		return fmt.Errorf("transaction %s is no longer pending", j.ID)
	}
	have := map[string]bool{}
	for _, f := range cur.Files {
		have[f.Path] = true
	}
	for _, f := range files {
		if !have[f.Path] {
			cur.Files = append(cur.Files, f)
			have[f.Path] = true
		}
	}
	if len(cur.Files) > maxFiles {
		return fmt.Errorf("a transaction holds at most %d files", maxFiles)
	}
	if err := m.write(cur); err != nil {
		return err
	}
	*j = *cur
	return nil
}

// write stores j atomically and durably.
func (m *Manager) write(j *Journal) error {
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode journal: %w", err)
	}
	if len(b) > maxJournal {
		return fmt.Errorf("the journal would hold %d bytes, more than %d", len(b), maxJournal)
	}
	return hostfs.WriteAtomic(m.journalPath(j.ID), b, hostfs.Options{Mode: 0o600, UID: -1, GID: -1})
}

func (m *Manager) read(id string) (*Journal, error) {
	b, ok, err := readBounded(m.journalPath(id), maxJournal)
	if err != nil || !ok {
		return nil, err
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("journal %s: %w", id, err)
	}
	if j.ID != id || j.Version != journalVersion {
		return nil, fmt.Errorf("journal %s: id %q, version %d: not a journal this helper wrote", id, j.ID, j.Version)
	}
	return &j, nil
}

func readBounded(p string, max int64) ([]byte, bool, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > max {
		return nil, false, fmt.Errorf("%s is not a regular file of at most %d bytes", p, max)
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	return b, err == nil, err
}

// ids lists the transactions in Dir that have a journal, oldest first.
func (m *Manager) ids() ([]string, error) {
	ents, err := os.ReadDir(m.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".journal"); ok && ValidID(id) {
			out = append(out, id)
		}
	}
	sort.Strings(out) // ids start with the time, in hex
	return out, nil
}

// pending returns the journals of this network namespace.
func (m *Manager) pending() ([]*Journal, error) {
	ids, err := m.ids()
	if err != nil {
		return nil, err
	}
	var out []*Journal
	here := netNS()
	for _, id := range ids {
		j, err := m.read(id)
		if err != nil {
			return nil, fmt.Errorf("%w; no transaction can begin or be recovered on this host until %s is removed by hand (check what it held first)", err, m.journalPath(id))
		}
		if j != nil && j.NetNS == here {
			out = append(out, j)
		}
	}
	return out, nil
}

// Outcome is how a transaction ended (or that it has not yet).
type Outcome = modules.Transaction

// Confirm confirms transaction id: when it is still pending and its deadline has not
// passed, the rollback is disarmed and the journal removed. A transaction already rolled
// back (or whose deadline has passed, which this call then rolls back itself, as the armed
// rollback would) returns that outcome instead: a confirmation never keeps a change the host
// has given up on.
func (m *Manager) Confirm(id string) (*Outcome, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%q is not a transaction id", id)
	}
	if err := m.ensureDir(); err != nil {
		return nil, err
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	j, err := m.read(id)
	if err != nil {
		return nil, err
	}
	if j == nil {
		o, err := m.outcome(id)
		if err != nil {
			return nil, err
		}
		if o == nil {
			return nil, fmt.Errorf("%w: %s", ErrNoTransaction, id)
		}
		return o, nil
	}
	if m.Left(j) <= 0 {
		return m.rollbackLocked(j, "the confirmation came after the deadline")
	}
	// The journal goes first: once it is gone nothing rolls back (a timer that fires
	// meanwhile finds the outcome), and the disarm after it only tidies up.
	if err := os.Remove(m.journalPath(id)); err != nil {
		return nil, err
	}
	m.disarm(j)
	m.bootUnitUpdate()
	o := &Outcome{ID: id, State: modules.TxnConfirmed, Module: j.Module, Armed: j.Armed.How}
	return o, m.record(o)
}

func (m *Manager) disarm(j *Journal) {
	if m.Disarm != nil {
		_ = m.Disarm(m, j)
		return
	}
	if m.Arm == nil {
		disarmReal(m, j)
	}
}

// Rollback restores transaction id now, for why; a transaction already ended returns its
// outcome. It is what the armed timer, the watchdog and the boot unit run.
func (m *Manager) Rollback(id, why string) (*Outcome, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%q is not a transaction id", id)
	}
	if ok, err := m.haveDir(); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("%w: %s", ErrNoTransaction, id)
		}
		return nil, err
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	j, err := m.read(id)
	if err != nil {
		return nil, err
	}
	if j == nil {
		o, err := m.outcome(id)
		if err == nil && o == nil {
			// Recorded, so that an apply still on its way with this id cannot begin it
			// after the controller was told there is none (Begin refuses a used id).
			_ = m.record(&Outcome{ID: id, State: modules.TxnNone, Why: why})
			err = fmt.Errorf("%w: %s", ErrNoTransaction, id)
		}
		return o, err
	}
	return m.rollbackLocked(j, why)
}

// Again restores j once more, from the copy the apply that made it kept in memory, when j
// was rolled back while that apply still ran (its deadline came, or the controller, having
// lost the answer, asked for it): what the apply changed after the rollback would
// otherwise stay. again is false when j is still pending or was not rolled back.
func (m *Manager) Again(j *Journal) (o *Outcome, again bool, err error) {
	if ok, err := m.haveDir(); err != nil || !ok {
		return nil, false, err
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if cur, err := m.read(j.ID); err != nil || cur != nil {
		return nil, false, err
	}
	first, err := m.outcome(j.ID)
	if err != nil || first == nil || (first.State != modules.TxnRolledBack && first.State != modules.TxnRollbackFailed) {
		return first, false, err
	}
	o, err = m.rollbackLocked(j, first.Why+"; and again once the change, still running then, had finished")
	if o != nil {
		o.Restored = append(slices.Clone(first.Restored), o.Restored...)
		if rerr := m.record(o); err == nil {
			err = rerr
		}
	}
	return o, true, err
}

// RollbackPatiently is Rollback for the armed rollback (the timer's service and the
// watchdog): a lock held by a slow confirmation or another rollback is waited for again,
// for at most ten minutes, rather than given up on, since nothing else would roll back.
func (m *Manager) RollbackPatiently(id, why string) (*Outcome, error) {
	end := time.Now().Add(10 * time.Minute)
	for {
		o, err := m.Rollback(id, why)
		if err == nil || errors.Is(err, ErrNoTransaction) || time.Now().After(end) || !errors.Is(err, errLocked) {
			return o, err
		}
	}
}

// rollbackLocked restores j: the files first (they decide the state after a reboot), then
// each restorer's runtime state; then it verifies both, records the outcome and removes the
// journal. A restore that fails in part goes on with the rest; the outcome says what was
// restored and what differs still.
func (m *Manager) rollbackLocked(j *Journal, why string) (*Outcome, error) {
	m.disarm(j)
	o := &Outcome{ID: j.ID, State: modules.TxnRolledBack, Module: j.Module, Why: why, Armed: j.Armed.How}
	var problems []string
	for _, f := range j.Files {
		did, err := restoreFile(f)
		if err != nil {
			problems = append(problems, err.Error())
		}
		if did != "" {
			o.Restored = append(o.Restored, did)
		}
	}
	sameBoot := j.BootID == bootID()
	names := make([]string, 0, len(j.Runtime))
	for n := range j.Runtime {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !sameBoot {
			// The running state of another boot is gone; the restored files make this one.
			continue
		}
		r, ok := lookup(n, m.Restorers)
		if !ok {
			problems = append(problems, fmt.Sprintf("no restorer %q in this helper", n))
			continue
		}
		did, err := r.Restore(j.Runtime[n])
		o.Restored = append(o.Restored, did...)
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	// Verify: the files byte for byte, the runtime state as the restorer reads it.
	for _, f := range j.Files {
		if d := verifyFile(f); d != "" {
			o.Verification = append(o.Verification, d)
		}
	}
	for _, n := range names {
		if !sameBoot {
			continue
		}
		if r, ok := lookup(n, m.Restorers); ok {
			diffs, err := r.Verify(j.Runtime[n])
			o.Verification = append(o.Verification, diffs...)
			if err != nil {
				o.Verification = append(o.Verification, "verify "+n+": "+err.Error())
			}
		}
	}
	if len(problems) > 0 {
		o.Error = strings.Join(problems, "; ")
	}
	if len(problems) > 0 || len(o.Verification) > 0 {
		o.State = modules.TxnRollbackFailed
	}
	o.Verified = len(o.Verification) == 0
	if err := m.record(o); err != nil {
		return o, err
	}
	if err := os.Remove(m.journalPath(j.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return o, err
	}
	m.bootUnitUpdate()
	return o, nil
}

func restoreFile(f File) (string, error) {
	cur, ok, err := hostfs.ReadOptional(f.Path)
	if err != nil {
		return "", fmt.Errorf("restore %s: %w", f.Path, err)
	}
	if !f.Existed {
		if !ok {
			return "", nil
		}
		if err := hostfs.Remove(f.Path); err != nil {
			return "", fmt.Errorf("restore %s: %w", f.Path, err)
		}
		return f.Path + ": removed (made by the transaction)", nil
	}
	if ok && string(cur) == string(f.Content) && fileMeta(f) == "" {
		return "", nil
	}
	err = hostfs.WriteAtomic(f.Path, f.Content, hostfs.Options{Mode: fs.FileMode(f.Mode), UID: f.UID, GID: f.GID, MkdirAll: true})
	if err != nil {
		return "", fmt.Errorf("restore %s: %w", f.Path, err)
	}
	if !ok {
		return f.Path + ": written back (removed by the transaction)", nil
	}
	return f.Path + ": written back", nil
}

// fileMeta describes how the file's mode or owner differs from f's ("" when they agree).
func fileMeta(f File) string {
	fi, err := hostfs.Stat(f.Path)
	if err != nil || fi == nil {
		return "cannot stat"
	}
	var d []string
	if uint32(fi.Mode().Perm()) != f.Mode {
		d = append(d, fmt.Sprintf("mode %o, not %o", fi.Mode().Perm(), f.Mode))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && f.UID >= 0 && (int(st.Uid) != f.UID || int(st.Gid) != f.GID) {
		d = append(d, fmt.Sprintf("owner %d:%d, not %d:%d", st.Uid, st.Gid, f.UID, f.GID))
	}
	return strings.Join(d, ", ")
}

func verifyFile(f File) string {
	cur, ok, err := hostfs.ReadOptional(f.Path)
	switch {
	case err != nil:
		return fmt.Sprintf("%s: %v", f.Path, err)
	case !f.Existed && ok:
		return f.Path + ": still there"
	case !f.Existed:
		return ""
	case !ok:
		return f.Path + ": missing"
	}
	sum := sha256.Sum256(cur)
	if hex.EncodeToString(sum[:]) != f.SHA256 {
		return f.Path + ": content differs (sha256 " + hex.EncodeToString(sum[:8]) + "…, not " + f.SHA256[:min(16, len(f.SHA256))] + "…)"
	}
	if d := fileMeta(f); d != "" {
		return f.Path + ": " + d
	}
	return ""
}

// record stores an outcome and keeps the newest maxOutcomes.
func (m *Manager) record(o *Outcome) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := hostfs.WriteAtomic(m.outcomePath(o.ID), b, hostfs.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return err
	}
	ents, err := os.ReadDir(m.Dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".outcome") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for len(names) > maxOutcomes {
		_ = os.Remove(filepath.Join(m.Dir, names[0]))
		names = names[1:]
	}
	return nil
}

func (m *Manager) outcome(id string) (*Outcome, error) {
	b, ok, err := readBounded(m.outcomePath(id), 1<<20)
	if err != nil || !ok {
		return nil, err
	}
	var o Outcome
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("outcome %s: %w", id, err)
	}
	return &o, nil
}

// Recover rolls back the transactions of this network namespace that nothing will roll
// back any more: made in an earlier boot, past their deadline (by more than a grace for the
// armed rollback to run), or whose armer is gone (the watchdog killed). The helper calls it
// when it starts; a transaction still armed and within its time is left to its run.
func (m *Manager) Recover() ([]Outcome, error) {
	if ok, err := m.haveDir(); err != nil || !ok {
		return nil, err
	}
	if ids, err := m.ids(); err != nil || len(ids) == 0 {
		return nil, err
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return m.recoverLocked("a transaction left pending (found when the helper started)")
}

// staleGrace is how long past its deadline a transaction is left to its armed rollback.
const staleGrace = 10 * time.Second

func (m *Manager) recoverLocked(why string) ([]Outcome, error) {
	pending, err := m.pending()
	if err != nil {
		return nil, err
	}
	var out []Outcome
	boot := bootID()
	for _, j := range pending {
		reason := ""
		switch {
		case j.BootID != boot:
			reason = "made before the host rebooted"
		case m.Left(j) < -staleGrace:
			reason = "its deadline passed and its rollback did not run"
		case !m.armed(j):
			reason = "its armed rollback is gone"
		default:
			continue
		}
		o, err := m.rollbackLocked(j, why+": "+reason)
		if o != nil {
			out = append(out, *o)
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// armed says whether j's rollback is still armed.
func (m *Manager) armed(j *Journal) bool {
	switch j.Armed.How {
	case "watchdog":
		st, err := procStart(j.Armed.PID)
		return err == nil && st == j.Armed.Start
	case "systemd":
		return systemdTimerActive(m, j.Armed.Unit)
	case "none":
		return true
	}
	return false
}

// ReadJournals returns the pending journals of this network namespace (for tests and the
// helper's report).
func (m *Manager) ReadJournals() ([]*Journal, error) { return m.pending() }

// Left is how long j has until its deadline: on the boot clock in the boot that made it (a
// wall clock stepped by NTP during the window does not move it), else on the wall clock.
func (m *Manager) Left(j *Journal) time.Duration {
	if m.Now == nil && j.BootDeadline > 0 && j.BootID == bootID() {
		if now, ok := bootClock(); ok {
			return time.Duration(j.BootDeadline - now)
		}
	}
	return j.Deadline.Sub(m.now())
}

// bootClock is CLOCK_BOOTTIME in nanoseconds: time since boot, suspend included, never
// stepped.
func bootClock() (int64, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, false
	}
	return ts.Nano(), true
}

// bootID is this boot's id; "" where the kernel does not say.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// netNS names this process's network namespace ("net:[4026531840]").
func netNS() string {
	s, _ := os.Readlink("/proc/self/ns/net")
	return s
}
