// Package remote connects the engine to hosts: one SSH connection per host, the helper
// installed at a content-addressed path (pushed only when missing, and verified before it
// runs: by hash, or, without become, by the identity of the very file this controller hashed
// before; see Stamps), and on that connection one helper process per identity a task runs
// as (the login user, or a become user), each started the first time it is needed and
// driven over the protocol.
package remote

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runbook/runbook/engine/helperbin"
	"github.com/runbook/runbook/engine/protocol"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/engine/transport"
	"github.com/runbook/runbook/internal/sh"
	"github.com/runbook/runbook/internal/tail"
	"github.com/runbook/runbook/internal/turns"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

// Connector opens connections over SSH. It implements run.Connector.
type Connector struct {
	Dialer *transport.Dialer
	// SSHConfig is the OpenSSH client config file (-F); "" reads the default files.
	SSHConfig string
	// BecomePassword is used for become when the inventory gives none for a host
	// (ansible_become_password).
	BecomePassword string
	// Stamps, when set, lets a start skip hashing a helper file that this controller has
	// verified before (see Stamps); nil hashes at every start.
	Stamps *Stamps
	// ProbeTimeout, PushTimeout and StartTimeout bound the steps of a start, each on its
	// own: the probe of the host (default 30 s); the upload, hash and rename of the helper
	// (5 min); and the start script up to the helper's hello, its hash included (30 s).
	ProbeTimeout, PushTimeout, StartTimeout time.Duration
	// NoCompress sends the helper as it is even to hosts that could inflate it (for
	// comparisons; RUNBOOK_HELPER_COMPRESS=0).
	NoCompress bool
	// MaxPushes is how many helper pushes run at once across all hosts (0: 32; negative: no
	// limit). A push waits for its turn before its PushTimeout starts. Hosts that already
	// hold the helper never wait.
	MaxPushes int
	pushes    turns.Turns
	// Stats counts helper pushes, for reports and tests.
	Stats Stats
	// memos keep each task's last arguments in their wire form (protocol.ArgsMemo), for
	// the next host's equal ones.
	memos sync.Map
}

// Stats counts what the connector did.
type Stats struct {
	mu      sync.Mutex
	Pushed  int // helpers uploaded
	Reused  int // helpers found in place
	Hashed  int // starts that hashed the helper's file
	Stamped int // starts that found the very file verified before (Stamps)
	// Sent is the bytes of helper uploads, compressed or not.
	Sent  int64
	hosts map[string]bool
}

// SentBytes returns the bytes of helper uploads.
func (s *Stats) SentBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Sent
}

func (s *Stats) sent(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Sent += int64(n)
}

// startedOn notes a helper started on the host: a host may run several, one per identity.
func (s *Stats) startedOn(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hosts == nil {
		s.hosts = map[string]bool{}
	}
	s.hosts[host] = true
}

// Hosts returns on how many hosts helpers started.
func (s *Stats) Hosts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.hosts)
}

func (s *Stats) add(pushed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pushed {
		s.Pushed++
	} else {
		s.Reused++
	}
}

func (s *Stats) verified(stamped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stamped {
		s.Stamped++
	} else {
		s.Hashed++
	}
}

// Counts returns the pushed and reused counts: every helper started was either pushed first
// or found in place.
func (s *Stats) Counts() (pushed, reused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Pushed, s.Reused
}

// Verifications returns how many starts hashed the helper and how many found the file
// verified before.
func (s *Stats) Verifications() (hashed, stamped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Hashed, s.Stamped
}

var _ run.Connector = (*Connector)(nil)

// Target builds the SSH target of an inventory host: the inventory's connection values,
// the OpenSSH options given in ansible_ssh_common_args, then ssh_config for the rest. It
// has no become: each helper's identity adds its own (Connection.Executor).
//
// A host with connection variables runbook cannot honour (inventory.Host.CheckConnection)
// is refused: the CLI reports them before any host is touched, this is for other callers.
func (c *Connector) Target(h *inventory.Host) (transport.Target, error) {
	if errs := h.CheckConnection(); len(errs) > 0 {
		return transport.Target{Name: h.Name}, errors.Join(errs...)
	}
	conn := h.Connection()
	t := transport.Target{Name: h.Name, Address: conn.Address, Port: conn.Port, User: conn.User,
		IdentityFile: conn.IdentityFile, ProxyJump: conn.ProxyJump, Password: conn.Password}
	opts, err := h.SSHOptions()
	if err != nil {
		return t, err
	}
	if err := applySSHOptions(&t, opts); err != nil {
		return t, fmt.Errorf("%s: ssh arguments: %w", h.Name, err)
	}
	return transport.ResolveTarget(h.Name, t, c.SSHConfig)
}

// applySSHOptions applies the OpenSSH -o options the inventory gave for a host (parsed by
// inventory.Host.SSHOptions) that the transport understands; ssh_config fills in the rest.
func applySSHOptions(t *transport.Target, opts map[string]string) error {
	if v := opts["userknownhostsfile"]; v != "" {
		t.KnownHostsFiles = append(t.KnownHostsFiles, strings.Fields(v)...)
	}
	if v := opts["stricthostkeychecking"]; v != "" {
		t.StrictHostKeyChecking = strings.ToLower(v)
	}
	// ProxyJump and ProxyCommand compete in the inventory (the first given wins), so opts
	// holds one of them. The inventory turned a ProxyJump, and a ProxyCommand that only runs
	// "ssh -W %h:%p" through one jump host, into t.ProxyJump ("none" included: ResolveTarget
	// then reads no ssh_config proxy and connects directly); any other ProxyCommand is kept
	// as written, and the transport runs it.
	if v := opts["proxycommand"]; v != "" && t.ProxyJump == "" {
		t.ProxyCommand = v
	}
	if v := opts["identitiesonly"]; v != "" {
		t.IdentitiesOnly = strings.EqualFold(v, "yes")
	}
	if v := opts["identityagent"]; v != "" {
		t.IdentityAgent = v
	}
	// ssh uses a HostName option over the name it was given (Ansible gives ansible_host).
	if v := opts["hostname"]; v != "" {
		t.Address = v
	}
	if v := opts["connecttimeout"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("ConnectTimeout is not a number of seconds") // the value is not shown: ssh arguments can hold a password
		}
		t.ConnectTimeout = time.Duration(n) * time.Second
	}
	return nil
}

// Connect dials the host. No helper starts yet: Connection.Executor starts one per
// identity, the first time a task needs it. The become password of to (the inventory's, as
// the engine resolved it), else BecomePassword, is what the connection's helpers use under
// become.
func (c *Connector) Connect(ctx context.Context, to run.Endpoint) (run.Connection, error) {
	h := to.Host
	t, err := c.Target(h)
	if err != nil {
		return nil, err
	}
	d := c.Dialer
	if d == nil {
		d = &transport.Dialer{Agent: true, Keepalive: 15 * time.Second}
	}
	conn, err := d.Dial(ctx, t)
	if err != nil {
		return nil, err
	}
	pw := to.Become.Password
	if pw == "" {
		pw = c.BecomePassword
	}
	return &Connection{c: c, conn: conn, t: t, password: pw, helpers: map[run.Identity]*Executor{}}, nil
}

// Connection is one SSH connection to a host and the helpers started on it, one per
// identity. It implements run.Connection.
type Connection struct {
	c        *Connector
	conn     *transport.Conn
	t        transport.Target // without become
	password string           // the host's become password: the inventory's, else -K's

	mu      sync.Mutex
	helpers map[run.Identity]*Executor
	closed  bool
}

var _ run.Connection = (*Connection)(nil)

// String names the connection's target; never the become password.
func (x *Connection) String() string { return "connection to " + x.t.String() }

// GoString keeps %#v from printing the become password.
func (x *Connection) GoString() string { return x.String() }

// identity is the helper id runs on: a root login that would become root needs no become
// (start drops it too), so both share the login's helper.
func (x *Connection) identity(id run.Identity) run.Identity {
	if id.Method == "" {
		return run.Login
	}
	if id.User == "" {
		id.User = "root"
	}
	if x.t.User == "root" && id.User == "root" {
		return run.Login
	}
	return id
}

// Executor returns the helper that runs tasks as id, starting it on the connection the
// first time id is asked for. The start places and verifies the helper as that identity
// (start): each identity has its own helper file, in its own places. The engine asks for
// one host's executors one at a time; a second caller would wait for the first's start.
func (x *Connection) Executor(ctx context.Context, id run.Identity) (run.Executor, error) {
	id = x.identity(id)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, fmt.Errorf("%w: the connection to %s is closed", run.ErrUnreachable, x.t.Name)
	}
	if e := x.helpers[id]; e != nil {
		return e, nil
	}
	if err := x.conn.Err(); err != nil {
		return nil, fmt.Errorf("%w: connection to %s lost: %v", run.ErrUnreachable, x.t.Name, err)
	}
	t := x.t
	t.BecomeMethod, t.BecomeUser = id.Method, id.User
	if id.Method != "" {
		t.BecomePassword = x.password
	}
	e, err := x.c.start(ctx, x.conn, t)
	if err != nil {
		return nil, err
	}
	x.c.Stats.startedOn(x.t.Name)
	x.helpers[id] = e
	return e, nil
}

// Close ends every helper on the connection, at once (each waits a little for its helper
// to exit), then the connection, and with it a ProxyCommand's process.
func (x *Connection) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil
	}
	x.closed = true
	helpers := x.helpers
	x.helpers = nil
	x.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range helpers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.close()
		}()
	}
	wg.Wait()
	return x.conn.Close()
}

// probe is what the controller learns about a host before starting the helper: about the
// identity that will run it (the login user, or the become user under become).
type probe struct {
	arch string
	uid  int
	home string
	// gunzip says the host has gzip, so the helper can be sent compressed.
	gunzip bool
}

// Default bounds of the steps of a start. A host's context may have no deadline at all
// (--host-timeout defaults to none), so each step that waits on the host has its own.
const (
	defaultProbeTimeout = 30 * time.Second
	defaultPushTimeout  = 5 * time.Minute
	defaultStartTimeout = 30 * time.Second
	// defaultMaxPushes bounds the helper pushes in flight. A thousand uploads at once take
	// no less time in all than a few dozen in turn (the controller's link and CPU, and the
	// hosts', are what they are), but each then lasts the whole first contact: every one
	// holds its buffers, and under that load handshakes and starts run past their deadlines.
	defaultMaxPushes = 32
)

func (c *Connector) probe(ctx context.Context, conn *transport.Conn, b transport.Become) (probe, error) {
	limit := cmp.Or(c.ProbeTimeout, defaultProbeTimeout)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	// A host decides what it prints: keep only the end of it.
	out, errb := &tail.Buffer{Max: 64 << 10}, &tail.Buffer{Max: 4 << 10}
	code, err := conn.RunAs(ctx, b, probeLine, nil, out, errb)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return probe{}, fmt.Errorf("probe %s: no answer within %s", conn.Target.Name, limit)
		}
		return probe{}, err
	}
	if code != 0 {
		return probe{}, fmt.Errorf("probe %s: exit %d: %s", conn.Target.Name, code, strings.TrimSpace(errb.String()))
	}
	pr, ok, err := parseProbe(out.String())
	if !ok {
		return probe{}, fmt.Errorf("probe %s: unexpected output %q", conn.Target.Name, firstLine(out.String(), 200))
	}
	if err != nil {
		return probe{}, fmt.Errorf("%s: %w", conn.Target.Name, err)
	}
	return pr, nil
}

// firstLine is s's first line, at most n bytes of it.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// probeLine prints what the controller needs to know to place the helper; the fast start
// script prints the same line on stderr when the helper is missing, which saves the
// separate probe session on first contact.
const probeLine = `printf 'runbook-probe\t%s\t%s\t%s\t%s\n' "$(uname -m)" "$(id -u)" "$HOME" ` + probeGzip

// probeGzip is the probe's last field: "gz" when the host can inflate a helper sent
// compressed.
const probeGzip = `"$(command -v gzip >/dev/null 2>&1 && echo gz)"`

// parseProbe finds a probe line in text; ok is false when there is none.
func parseProbe(text string) (pr probe, ok bool, err error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Split(strings.TrimRight(line, "\r"), "\t")
		if (len(f) != 4 && len(f) != 5) || f[0] != "runbook-probe" {
			continue
		}
		uid, uerr := strconv.Atoi(f[2])
		if uerr != nil || uid < 0 {
			continue
		}
		arch, aerr := helperbin.Arch(f[1])
		return probe{arch: arch, uid: uid, home: f[3], gunzip: len(f) == 5 && f[4] == "gz"}, true, aerr
	}
	return probe{}, false, nil
}

// helperDirs lists where the helper may live on a host, best first: a system path for root,
// the user's cache otherwise. The next place is used when one cannot be made (a service
// account whose home it cannot write) or is on a noexec mount; for a user other than root
// the last is /tmp/runbook-UID, which the start and install scripts accept only when it
// belongs to that user (checkFunc). A home that is not an absolute path (none, or "/") is
// replaced by that place.
func helperDirs(pr probe) []string {
	tmp := "/tmp/runbook-" + strconv.Itoa(pr.uid)
	home := pr.home
	if !strings.HasPrefix(home, "/") || home == "/" {
		home = tmp
	}
	if pr.uid == 0 {
		return []string{"/var/lib/runbook/helper", home + "/.cache/runbook/helper"}
	}
	if home == tmp {
		return []string{tmp + "/.cache/runbook/helper"}
	}
	return []string{home + "/.cache/runbook/helper", tmp + "/.cache/runbook/helper"}
}

// hashOf is a shell command printing the sha256 of file first on its line. openssl uses the
// CPU's SHA instructions and is about twice as fast as coreutils' sha256sum on the helper,
// which a start hashes; sha256sum is the fallback.
func hashOf(file string) string {
	return fmt.Sprintf(`if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "%[1]s" 2>/dev/null; else sha256sum "%[1]s" 2>/dev/null; fi`,
		strings.Trim(file, `"`))
}

// envVerified tells the helper which hash the start script verified its file against
// (cmd/runbook-helper reads it), so it need not hash itself again for its hello.
const envVerified = "RUNBOOK_HELPER_VERIFIED"

// Exit codes of the start and install scripts, chosen to not clash with a shell's own (126,
// 127).
const (
	exitHelperMissing = 97
	// exitUnsafe: a directory on the helper's path, or the file itself, could be changed by
	// another user (checkFunc); the script said which on stderr.
	exitUnsafe = 98
	// exitNoPlace: the helper's directory could not be made or entered (the script said
	// why on stderr); the next place is tried.
	exitNoPlace = 99
	// exitNotExecutable is the shell's own code for a file it cannot execute.
	exitNotExecutable = 126
)

// envHow tells the helper how the start script verified it, for its hello
// (protocol.Hello.Verified).
const envHow = "RUNBOOK_HELPER_HOW"

// checkFunc defines the shell function ck, the one check every start and install runs
// before it trusts a place: `ck DIR [FILE]`, with DIR a physical path (no symbolic links,
// from `cd -P`) and $u the uid that will run the helper. Every component of DIR, from /
// down, and FILE must be owned by root or $u and not writable by group or others; only a
// root-owned sticky directory above DIR (such as /tmp) may be world-writable, since nobody
// but an entry's owner can rename or remove the entry there. `ck -p DIR` checks a parent
// that the caller will create its own directory in: DIR itself may then be such a sticky
// directory. A failure is explained on stderr and exits exitUnsafe. One stat(1) reads them
// all; it leaves in L the identity (stampFormat) of the last one, the file. Its variables
// are upper-case, the scripts' own lower-case. The mode is stat's raw mode in hex: 18 is
// 022 (group and other write) and 512 is 01000 (sticky).
//
// With DIR and every directory above it writable only by root and $u, nobody else can
// rename, replace or alter anything under DIR between the check, the hash and the exec.
var checkFunc = strings.ReplaceAll(`ck() { K=1; if [ "$1" = -p ]; then K=0; shift; fi; C=$1; if [ -n "$2" ]; then K=2; set -- "$2"; else set --; fi; `+
	`while :; do set -- "$C" "$@"; [ "$C" = / ] && break; C=${C%/*}; C=${C:-/}; done; `+
	`X=$(stat -L -c '`+stampFormat+`' "$@" 2>&1) || { printf 'runbook: cannot read the owner and mode of %s: %s\n' "$*" "$X" >&2; exit EXIT; }; `+
	`I=0; N=$#; for C do I=$((I+1)); L=${X%%[[:space:]]*}; X=${X#*[[:space:]]}; `+
	`O=${L#*:*:*:*:}; O=${O%%:*}; M=${L#*:*:*:}; M=${M%%:*}; `+
	`case "$O:$M" in *[!0-9a-f:]*|:*|*:) printf 'runbook: cannot read the owner and mode of %s\n' "$C" >&2; exit EXIT;; esac; `+
	`if [ "$O" != 0 ] && [ "$O" != "$u" ]; then printf 'runbook: %s belongs to uid %s, not to root or to uid %s who runs the helper\n' "$C" "$O" "$u" >&2; exit EXIT; fi; `+
	`if [ $((0x$M & 18)) != 0 ] && { [ $((0x$M & 512)) = 0 ] || [ "$O" != 0 ] || [ $I -gt $((N-K)) ]; }; then `+
	`printf 'runbook: %s is writable by users other than its owner (mode %o)\n' "$C" $((0x$M & 4095)) >&2; exit EXIT; fi; `+
	`done; }`, "EXIT", strconv.Itoa(exitUnsafe))

// uidVar sets u to the uid that runs the helper. It asks id(1), never the environment: a
// shell takes $EUID from there when it is set.
const uidVar = `u=$(id -u); `

// runHelper is the end of every start script: with $p the directory that holds the helper
// and $s its sha256, it resolves the directory to its physical path, checks it (checkFunc),
// reads the file's identity (for the stamp store when stamp is set), execs the file without
// hashing when skip says so, and else hashes it and execs it only when the hash is $s.
// Everything after the check uses the physical path, so no link is followed again.
func runHelper(stamp bool, skip string) string {
	f := `f=; `
	if stamp {
		f = `f=" $L"; `
	}
	return `o=$PWD; cd -P "$p" 2>/dev/null || miss; p=$PWD; cd "$o" 2>/dev/null || cd /; p=$p/$s; ` +
		`[ -L "$p" ] && miss; ck "${p%/*}" "$p"; ` + f + skip +
		`h=$(` + hashOf("$p") + `) || miss; [ "${h%% *}" = "$s" ] || miss; export ` + envVerified + `=$s ` + envHow + `="hash$f"; exec "$p"`
}

// startScript verifies the helper sha in dir and starts it; a helper that is missing or
// altered exits exitHelperMissing. With stamp it also reports the file's identity, for the
// controller to record (Stamps), and when that identity is expect (a stamp the store step
// just reported) it starts the file without hashing it again.
func startScript(dir, sha string, stamp bool, expect string) string {
	skip := ""
	if stamp {
		skip = stampSkip(sha, expect)
	}
	return uidVar + `miss() { exit ` + strconv.Itoa(exitHelperMissing) + `; }; ` + checkFunc + `; ` +
		`p=` + sh.Quote(dir) + `; s=` + sha + `; [ -f "$p/$s" ] || miss; ` + runHelper(stamp, skip)
}

// stampSkip is the part of a start script (runHelper's skip) that execs the checked file
// without hashing it when its identity ($f) is expect, recorded when build was verified:
// "" when expect is no usable stamp.
func stampSkip(build, expect string) string {
	if !validStamp(expect) {
		return ""
	}
	return fmt.Sprintf(`if [ "$s$f" = %s ]; then export %s=$s %s=stamp; exec "$p"; fi; `,
		sh.Quote(build+" "+expect), envVerified, envHow)
}

// placeScript prepares dir, as the identity that will run the helper, to receive it: it
// checks (checkFunc) the deepest part of dir that exists before it creates anything below
// it, so nothing is made in a place another user controls; it creates the rest (private to
// that user) and checks the whole. It leaves d set to dir's physical path. Temporary files
// of uploads an hour old or more (a run cut off half-way) are removed; a push takes 5
// minutes at most.
func placeScript(dir string) string {
	return `umask 077; ` + uidVar + checkFunc + `; d=` + sh.Quote(dir) + `; o=$PWD; ` +
		`e=$d; while [ ! -d "$e" ]; do e=${e%/*}; e=${e:-/}; done; r=${d#"$e"}; ` +
		`cd -P "$e" || exit ` + strconv.Itoa(exitNoPlace) + `; e=$PWD; ck -p "$e"; d=${e%/}/${r#/}; ` +
		`mkdir -p "$d" || exit ` + strconv.Itoa(exitNoPlace) + `; cd -P "$d" || exit ` + strconv.Itoa(exitNoPlace) + `; d=$PWD; cd "$o" 2>/dev/null || cd /; ck "$d"; ` +
		`find "$d" -maxdepth 1 -type f -name '.*.tmp' -mmin +60 -exec rm -f {} + 2>/dev/null; `
}

// keepScript verifies the upload $t in the checked directory $d against sha and renames it
// to its content address; a half-written or altered upload never sits at the final name.
func keepScript(sha string, stamp bool) string {
	s := `h=$(` + hashOf("$t") + `); [ "${h%% *}" = ` + sha + ` ] || { rm -f "$t"; printf 'runbook: the sha256 of the upload %s is not the helper'"'"'s\n' "$t" >&2; exit 1; }; ` +
		`chmod 0755 "$t" && mv -f "$t" "$d/` + sha + `" || { rm -f "$t"; exit 1; }`
	if stamp {
		// The identity of the file just verified and renamed into place, for the first
		// start to find (Stamps): in $d, checked, only root and the user can have changed
		// it since the hash, as in a start between its hash and its exec.
		s += `; ck "$d" "$d/` + sha + `"; printf '` + stampLine + ` %s\n' "$L"`
	}
	return s
}

// stampLine begins the line on which keepScript reports the stored file's identity.
const stampLine = "runbook-stamp"

// storedStamp is the identity keepScript reported in out: its one stamp line, when that is
// a usable stamp and the last line; "" otherwise (anything else printed one, as a login
// shell's start-up files could).
func storedStamp(out string) string {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if strings.Count(out, stampLine) != 1 {
		return ""
	}
	st, ok := strings.CutPrefix(lines[len(lines)-1], stampLine+" ")
	if !ok || !validStamp(st) {
		return ""
	}
	return st
}

// tmpName is the name of one upload's temporary file in the helper's directory.
func tmpName(sha, tag string) string { return "." + sha[:16] + "." + tag + ".tmp" }

// streamScript stores the helper, size bytes read from stdin, as dir/sha, in one session:
// placeScript, a temporary file it creates exclusively (noclobber: O_EXCL, so no link or
// file planted at that name is written through), then keepScript. It reads exactly size
// bytes rather than up to the end of stdin: under su and doas stdin is a terminal, which
// has no end.
func streamScript(dir, sha, tag string, size int, gz bool) string {
	inflate := ""
	if gz {
		inflate = ` | gzip -dc`
	}
	return placeScript(dir) + `t=$d/` + tmpName(sha, tag) + `; rm -f "$t"; ` +
		`(set -C; head -c ` + strconv.Itoa(size) + inflate + ` > "$t") || { rm -f "$t"; printf 'runbook: cannot write %s\n' "$t" >&2; exit 1; }; ` + keepScript(sha, false)
}

// keepUploadScript is keepScript for a file uploaded over SFTP to the physical directory
// dir that placeScript printed: the directory is checked again first (it must still be
// that physical path, and safe), and the upload must be a regular file.
func keepUploadScript(dir, sha, tag string, gz, stamp bool) string {
	up := tmpName(sha, tag)
	inflate := ""
	if gz {
		// the upload is compressed: inflate it into the temporary file (created
		// exclusively), then check what came out
		up = tmpName(sha, tag+".gz")
		inflate = `z=$t; t=$d/` + tmpName(sha, tag) + `; rm -f "$t"; (set -C; gzip -dc < "$z" > "$t") || { rm -f "$z" "$t"; printf 'runbook: cannot inflate %s\n' "$z" >&2; exit 1; }; rm -f "$z"; `
	}
	return uidVar + checkFunc + `; d=` + sh.Quote(dir) + `; o=$PWD; ` +
		`cd -P "$d" && [ "$PWD" = "$d" ] || { printf 'runbook: %s moved during the upload\n' "$d" >&2; exit 1; }; cd "$o" 2>/dev/null || cd /; ck "$d"; ` +
		`t=$d/` + up + `; if [ -L "$t" ] || [ ! -f "$t" ]; then rm -f "$t"; printf 'runbook: %s is not the uploaded file\n' "$t" >&2; exit 1; fi; ` + inflate + keepScript(sha, stamp)
}

// noteVerified counts how the start script verified the helper and, when it hashed the file
// and read its identity (and record is set: no become), records that identity.
func (c *Connector) noteVerified(key string, h protocol.Hello, record bool) {
	how, stamp := parseVerified(h.Verified)
	c.Stats.verified(how == "stamp")
	if how == "hash" && record && c.Stamps != nil {
		c.Stamps.record(key, h.Build, stamp)
	}
}

// start starts the helper as the identity the target runs tasks as: the login user, or
// under become the become user, whose own places the helper is stored in and started from
// (helperDirs). Root therefore only ever runs a helper from a root-owned directory, never
// one from the login user's cache.
func (c *Connector) start(ctx context.Context, conn *transport.Conn, t transport.Target) (*Executor, error) {
	if t.User == "root" && (t.BecomeUser == "" || t.BecomeUser == "root") {
		t.BecomeMethod = ""
	}
	b := t.Become()
	// Without become the login user runs the helper, and the file's identity may be
	// recorded so that later starts need not hash it (Stamps); with become, never.
	direct := b.Method == ""
	key := stampKey(conn.Target.User, conn.Target.Address, conn.Target.Port, conn.HostKey)
	var build, expect string
	if direct {
		build, expect = c.Stamps.lookup(key)
	}
	// The usual case, one session: the script picks the helper for the host's machine type
	// and user, checks where it lies, verifies its hash and starts it. Only when it is
	// missing does the slower path below push it.
	script, known := fastStartScript(direct && c.Stamps != nil, build, expect)
	if script != "" {
		x, code, stderr, err := c.launchOut(ctx, conn, t, script, known)
		if err == nil {
			c.Stats.add(false)
			c.noteVerified(key, x.client.Hello(), direct)
			return x, nil
		}
		if code != exitHelperMissing {
			return nil, err
		}
		// The script said what it found; no separate probe session is needed.
		if pr, ok, perr := parseProbe(stderr); ok {
			if perr != nil {
				return nil, fmt.Errorf("%s: %w", t.Name, perr)
			}
			return c.install(ctx, conn, t, pr, key)
		}
	}
	pr, err := c.probe(ctx, conn, b)
	if err != nil {
		return nil, err
	}
	return c.install(ctx, conn, t, pr, key)
}

// install pushes the helper where pr says it belongs (when it is not there already) and
// starts it.
func (c *Connector) install(ctx context.Context, conn *transport.Conn, t transport.Target, pr probe, key string) (*Executor, error) {
	h, err := helperbin.Get(pr.arch)
	if err != nil {
		return nil, err
	}
	direct := t.BecomeMethod == ""
	stamp := direct && c.Stamps != nil
	only := map[string]bool{h.SHA256: true}
	var lastErr error
	for _, dir := range helperDirs(pr) {
		x, code, err := c.launch(ctx, conn, t, startScript(dir, h.SHA256, stamp, ""), only)
		if err == nil {
			c.Stats.add(false)
			c.noteVerified(key, x.client.Hello(), direct)
			return x, nil
		}
		if code == exitNotExecutable {
			// There, but it cannot run there (a noexec mount): the next place.
			lastErr = noexecError(t.Name, dir, h.SHA256, err)
			continue
		}
		if code != exitHelperMissing {
			return nil, err
		}
		stored, err := c.push(ctx, conn, t, h, dir, pr.gunzip, stamp)
		if err != nil {
			var np *noPlaceError
			if errors.As(err, &np) {
				// It cannot be made there (a home the user cannot write): the next place.
				lastErr = err
				continue
			}
			return nil, err
		}
		if stored != "" {
			// The store step hashed the file and reported its identity: the start finds
			// that identity and need not hash the file again.
			c.Stamps.record(key, h.SHA256, stored)
		}
		x, code, err = c.launch(ctx, conn, t, startScript(dir, h.SHA256, stamp, stored), only)
		if err == nil {
			c.Stats.add(true)
			c.noteVerified(key, x.client.Hello(), direct)
			return x, nil
		}
		if code != exitNotExecutable {
			return nil, err
		}
		lastErr = noexecError(t.Name, dir, h.SHA256, err)
	}
	return nil, lastErr
}

func noexecError(host, dir, sha string, err error) error {
	return fmt.Errorf("%s: the helper at %s/%s cannot be executed (is %s on a noexec mount?): %w", host, dir, sha, dir, err)
}

// push stores the helper in dir on the host, as the identity that will run it, so no file
// ever passes through another user's hands. Without become that is the login user: the
// directory is prepared and checked (placeScript), the file uploaded over SFTP under a
// name created exclusively, then verified and renamed (keepUploadScript). With become the
// bytes go over the stdin of one session under sudo, su or doas (streamScript); SFTP runs
// as the login user only.
//
// With stamp (no become, and a stamp store) it returns the stored file's identity, which
// the store step read after verifying it, when that is a usable stamp.
func (c *Connector) push(ctx context.Context, conn *transport.Conn, t transport.Target, h *helperbin.Helper, dir string, gunzip, stamp bool) (string, error) {
	// A host with gzip gets the helper compressed (about 40 % of its size): less to send
	// and to encrypt. It checks the hash of what it inflates.
	gz := gunzip && !c.NoCompress
	var data []byte
	var err error
	if gz {
		if data, err = h.Gzip(); err != nil {
			gz = false
		}
	}
	if !gz {
		data, err = h.Bytes()
	}
	if err != nil {
		return "", fmt.Errorf("read the helper for linux/%s: %w", h.Arch, err)
	}
	release, err := c.pushes.Enter(ctx, cmp.Or(c.MaxPushes, defaultMaxPushes))
	if err != nil {
		return "", fmt.Errorf("push helper to %s: %w", t.Name, err)
	}
	defer release()
	c.Stats.sent(len(data))
	limit := cmp.Or(c.PushTimeout, defaultPushTimeout)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tag := randomTag()
	// run runs one step of the push and turns its failure into an error.
	run := func(script string, stdin io.Reader, stdout io.Writer) error {
		errb := &tail.Buffer{Max: 4 << 10}
		code, err := conn.RunAs(ctx, t.Become(), script, stdin, stdout, errb)
		msg := strings.TrimSpace(errb.String())
		switch {
		case err != nil:
			return pushError(t.Name, dir, limit, err)
		case code == exitUnsafe:
			return unsafeError(t.Name, msg)
		case code == exitNoPlace:
			return &noPlaceError{host: t.Name, dir: dir, msg: msg}
		case code != 0:
			return fmt.Errorf("push helper to %s: store it in %s: exit %d: %s", t.Name, dir, code, msg)
		}
		return nil
	}
	if t.BecomeMethod != "" {
		return "", run(streamScript(dir, h.SHA256, tag, len(data), gz), bytes.NewReader(data), nil)
	}
	out := &tail.Buffer{Max: 4 << 10}
	if err := run(placeScript(dir)+`printf '%s\n' "$d"`, nil, out); err != nil {
		return "", err
	}
	phys := strings.TrimSuffix(out.String(), "\n")
	if !strings.HasPrefix(phys, "/") || strings.Contains(phys, "\n") {
		return "", fmt.Errorf("push helper to %s: %s resolves to %q", t.Name, dir, phys)
	}
	tmp := phys + "/" + tmpName(h.SHA256, tag)
	if gz {
		tmp = phys + "/" + tmpName(h.SHA256, tag+".gz")
	}
	if err := conn.Upload(ctx, bytes.NewReader(data), tmp, 0o600); err != nil {
		// Leave no half upload behind, when the connection still allows.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, _ = conn.Run(cctx, "rm -f "+sh.Quote(tmp), nil, nil, nil)
		cancel()
		return "", pushError(t.Name, dir, limit, err)
	}
	kept := &tail.Buffer{Max: 4 << 10}
	if err := run(keepUploadScript(phys, h.SHA256, tag, gz, stamp), nil, kept); err != nil {
		return "", err
	}
	return storedStamp(kept.String()), nil
}

// noPlaceError says that the helper's directory could not be made or entered.
type noPlaceError struct{ host, dir, msg string }

func (e *noPlaceError) Error() string {
	return fmt.Sprintf("push helper to %s: cannot make %s: %s", e.host, e.dir, e.msg)
}

func pushError(host, dir string, limit time.Duration, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("push helper to %s: not stored in %s within %s", host, dir, limit)
	}
	return fmt.Errorf("push helper to %s: %w", host, err)
}

func unsafeError(host, msg string) error {
	return fmt.Errorf("%s: refusing to store or run the helper where another user could change it: %s", host, strings.TrimPrefix(msg, "runbook: "))
}

// randomTag names one upload's temporary file.
func randomTag() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fastStartScript finds, verifies and starts the helper without knowing the host first: it
// maps `uname -m` to the embedded helpers' hashes and `id -u` to the helper directory, the
// same choices as the probe path's helperDirs. It also returns the hashes it may start.
// With stamp it reads the file's identity (Stamps); when that equals the identity recorded
// for build at an earlier hash (expect), the file is the very one verified then and is not
// hashed again.
func fastStartScript(stamp bool, build, expect string) (string, map[string]bool) {
	var builds []archBuild
	for _, m := range []struct{ arch, uname string }{{"amd64", "x86_64|amd64"}, {"arm64", "aarch64|arm64"}} {
		if h, err := helperbin.Get(m.arch); err == nil {
			builds = append(builds, archBuild{m.uname, h.SHA256})
		}
	}
	return fastStartScriptFor(builds, stamp, build, expect)
}

// archBuild is a helper build and the `uname -m` names (a case pattern) it runs on.
type archBuild struct{ uname, sha string }

func fastStartScriptFor(builds []archBuild, stamp bool, build, expect string) (string, map[string]bool) {
	known := map[string]bool{}
	var cases strings.Builder
	for _, b := range builds {
		known[b.sha] = true
		fmt.Fprintf(&cases, "%s) s=%s;; ", b.uname, b.sha)
	}
	if len(known) == 0 {
		return "", nil
	}
	var skip string
	if stamp && known[build] {
		skip = stampSkip(build, expect)
	}
	// bash knows the machine type without a fork (HOSTTYPE); other shells ask uname. A
	// HOSTTYPE that names no helper (a 32-bit bash on a 64-bit kernel) only sends the start
	// down the probe path, which asks uname.
	return fmt.Sprintf(`m=${HOSTTYPE:-$(uname -m)}; `+uidVar+
		`miss() { printf 'runbook-probe\t%%s\t%%s\t%%s\t%%s\n' "$m" "$u" "$HOME" `+probeGzip+` >&2; exit %d; }; `, exitHelperMissing) +
		checkFunc + `; ` + fmt.Sprintf(
		`case "$m" in %s*) miss;; esac; `+
			`case "$HOME" in /?*) hm=$HOME;; *) hm=/tmp/runbook-$u;; esac; `+
			// The same places, in the same order, as helperDirs; the first that holds the build
			// executable wins. test -x fails on a noexec mount, so a copy left on one is passed
			// over for the next place.
			`if [ "$u" = 0 ]; then set -- /var/lib/runbook/helper "$hm/.cache/runbook/helper"; `+
			`else set -- "$hm/.cache/runbook/helper"; [ "$hm" = /tmp/runbook-$u ] || set -- "$@" /tmp/runbook-$u/.cache/runbook/helper; fi; `+
			`p=; for d do if [ -x "$d/$s" ]; then p=$d; break; fi; done; [ -n "$p" ] || miss; `,
		cases.String()) + runHelper(stamp, skip), known
}

// launch starts the helper with script and reads its hello, which must name one of the
// builds in want. On failure it returns the script's exit code when the session ended
// with one.
func (c *Connector) launch(ctx context.Context, conn *transport.Conn, t transport.Target, script string, want map[string]bool) (*Executor, int, error) {
	x, code, _, err := c.launchOut(ctx, conn, t, script, want)
	return x, code, err
}

// launchOut is launch that also returns what the script wrote on stderr when it failed.
func (c *Connector) launchOut(ctx context.Context, conn *transport.Conn, t transport.Target, script string, want map[string]bool) (*Executor, int, string, error) {
	// The helper lives as long as the run, not as long as this call's context.
	sess, err := conn.StartAs(context.WithoutCancel(ctx), t.Become(), script)
	if err != nil {
		return nil, -1, "", err
	}
	stderr := &tail.Buffer{Max: 64 << 10}
	go func() { _, _ = io.Copy(stderr, sess.Stderr) }()
	hctx, cancel := context.WithTimeout(ctx, cmp.Or(c.StartTimeout, defaultStartTimeout))
	defer cancel()
	client, err := protocol.NewClient(hctx, sess.Stdout, sess.Stdin)
	if err != nil {
		sess.Stdin.Close()
		// A script that ended says why by its exit status, which follows its output's end
		// at once on a quiet host but seconds later when the host or the controller is
		// loaded (at first contact with a thousand hosts): wait for it as long as a start
		// may take. One that is still running is given 5 s to end.
		wait := 5 * time.Second
		if errors.Is(err, protocol.ErrNoHello) {
			wait = cmp.Or(c.StartTimeout, defaultStartTimeout)
		}
		code, _ := waitTimeout(sess, wait)
		msg := strings.TrimSpace(stderr.String())
		if code == exitUnsafe {
			return nil, code, msg, unsafeError(t.Name, msg)
		}
		if msg != "" && code != exitHelperMissing {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, code, msg, fmt.Errorf("start helper on %s: %w", t.Name, err)
	}
	if hb := client.Hello().Build; !want[hb] {
		sess.Close()
		return nil, -1, "", fmt.Errorf("start helper on %s: it reports build %s, which is not a helper this runbook started", t.Name, short(hb))
	}
	return &Executor{conn: conn, sess: sess, client: client, stderr: stderr, host: t.Name, memos: &c.memos}, 0, "", nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func waitTimeout(s *transport.Session, d time.Duration) (int, error) {
	type res struct {
		code int
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		code, err := s.Wait()
		ch <- res{code, err}
	}()
	select {
	case r := <-ch:
		return r.code, r.err
	case <-time.After(d):
		s.Close()
		return -1, errors.New("helper did not exit")
	}
}

// Executor drives one helper process. It implements run.Executor.
type Executor struct {
	// memos are the connector's: the wire form of each task's last arguments.
	memos  *sync.Map // *config.Task → *protocol.ArgsMemo
	host   string
	conn   *transport.Conn
	sess   *transport.Session
	client *protocol.Client
	stderr *tail.Buffer
	once   sync.Once
}

var _ run.Executor = (*Executor)(nil)

// call sends one request, bounded by ctx's deadline, and waits for its response. A lost
// connection is run.ErrUnreachable; a helper that died says what it wrote on stderr.
func (x *Executor) call(ctx context.Context, req *protocol.Request) (*protocol.Response, error) {
	wait, err := x.start(ctx, req, false)
	if err != nil {
		return nil, err
	}
	return wait()
}

// start is call's first half: it sends the request, and returns the wait for its response.
func (x *Executor) start(ctx context.Context, req *protocol.Request, hold bool) (func() (*protocol.Response, error), error) {
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMS = time.Until(dl).Milliseconds()
	}
	explain := func(err error) error {
		if x.conn.Err() != nil {
			return fmt.Errorf("%w: connection to %s lost: %v", run.ErrUnreachable, x.host, x.conn.Err())
		}
		if tail := strings.TrimSpace(x.stderr.String()); tail != "" && x.client.Err() != nil {
			return fmt.Errorf("%w (helper stderr: %s)", err, tail)
		}
		return err
	}
	start := x.client.Start
	if hold {
		start = x.client.Queue
	}
	wait, err := start(ctx, req)
	if err != nil {
		return nil, explain(err)
	}
	return func() (*protocol.Response, error) {
		resp, err := wait()
		if err != nil {
			return nil, explain(err)
		}
		return resp, nil
	}, nil
}

// Run sends one check or apply request and waits for its response.
func (x *Executor) Run(ctx context.Context, c run.Call, apply bool) (*modules.Result, error) {
	wait, err := x.Start(ctx, c, apply)
	if err != nil {
		return nil, err
	}
	return wait()
}

// Start sends one check or apply request and returns a function that waits for its
// response (run.Pipeliner): requests started one after the other reach the helper in that
// order, which a chain (Call.Chain) relies on.
func (x *Executor) Start(ctx context.Context, c run.Call, apply bool) (func() (*modules.Result, error), error) {
	return x.startCall(ctx, c, apply, false)
}

// Queue is Start holding the request back until Flush (run.Queuer).
func (x *Executor) Queue(ctx context.Context, c run.Call, apply bool) (func() (*modules.Result, error), error) {
	return x.startCall(ctx, c, apply, true)
}

// Flush sends the requests Queue held back, in one write.
func (x *Executor) Flush(ctx context.Context) error {
	return x.client.Flush(ctx)
}

func (x *Executor) startCall(ctx context.Context, c run.Call, apply, hold bool) (func() (*modules.Result, error), error) {
	op, module := "check", c.Module
	if apply {
		op = "apply"
	}
	req := &protocol.Request{Op: op, Module: module, Args: c.Args, Sensitive: c.Sensitive, Redact: run.Secrets(ctx), Txn: c.Txn,
		Chain: c.Chain, Tolerated: c.Tolerated}
	if c.Task != nil && x.memos != nil {
		m, _ := x.memos.LoadOrStore(c.Task, &protocol.ArgsMemo{})
		req.ArgsMemo = m.(*protocol.ArgsMemo)
	}
	if c.ConfirmTimeout != 0 {
		req.ConfirmTimeoutMS = c.ConfirmTimeout.Milliseconds()
		if c.ConfirmTimeout < 0 {
			req.ConfirmTimeoutMS = -1
		}
	}
	wait, err := x.start(ctx, req, hold)
	if err != nil {
		return nil, err
	}
	return func() (*modules.Result, error) {
		resp, err := wait()
		if err != nil {
			return nil, err
		}
		if resp.NotRun {
			return nil, run.ErrNotRun
		}
		return x.result(module, resp)
	}, nil
}

// result turns a check or apply response into the module's result.
func (x *Executor) result(module string, resp *protocol.Response) (*modules.Result, error) {
	res := &modules.Result{Status: resp.Status, Diff: resp.Diff, Msg: resp.Msg, Warnings: resp.Warnings, RebootRequired: resp.RebootRequired,
		Transaction: resp.Transaction}
	if len(resp.Data) > 0 {
		var fields []modules.Field
		if info, ok := modules.InfoOf(module); ok && len(info.Returns) > 0 {
			fields = info.Returns
		}
		data, err := resp.DataValue(fields)
		if err != nil {
			if resp.Error != nil {
				// The module's own failure is the news; data that does not convert is lost
				// beside it rather than hiding it.
				return res, resp.Error
			}
			return nil, fmt.Errorf("%s: %w", module, err)
		}
		res.Data = data
	}
	if resp.Error != nil {
		return res, resp.Error
	}
	return res, nil
}

func (x *Executor) Confirm(ctx context.Context, id string) (*modules.Transaction, error) {
	return x.txn(ctx, protocol.OpConfirm, id)
}

// Rollback has the helper roll back transaction id if it is still pending (the answer to
// the apply that began it was lost). It implements run.Confirmer.
func (x *Executor) Rollback(ctx context.Context, id string) (*modules.Transaction, error) {
	return x.txn(ctx, protocol.OpRollback, id)
}

func (x *Executor) txn(ctx context.Context, op, id string) (*modules.Transaction, error) {
	resp, err := x.call(ctx, &protocol.Request{Op: op, Txn: id})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	if resp.Transaction == nil || resp.Transaction.ID != id {
		return nil, fmt.Errorf("the helper on %s answered %s of transaction %s without it", x.host, op, id)
	}
	return resp.Transaction, nil
}

var _ run.Confirmer = (*Executor)(nil)

// Recovered lists the transactions the helper rolled back when it started (left pending by
// an earlier run that crashed, or by a reboot).
func (x *Executor) Recovered() []modules.Transaction { return x.client.Hello().Recovered }

// BootID is the host's boot id, as the helper's hello gave it. It implements run.Booter.
func (x *Executor) BootID() string { return x.client.Hello().BootID }

var _ run.Booter = (*Executor)(nil)

// Facts asks the helper for the host's facts. It implements run.FactGatherer.
func (x *Executor) Facts(ctx context.Context) (map[string]any, error) {
	resp, err := x.call(ctx, &protocol.Request{Op: protocol.OpFacts})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	dec := json.NewDecoder(bytes.NewReader(resp.Data))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		return nil, fmt.Errorf("facts from the helper: %w", err)
	}
	return data, nil
}

var _ run.FactGatherer = (*Executor)(nil)

// close ends the helper: its stdin closes, it exits. The connection stays open for the
// others (Connection.Close closes it).
func (x *Executor) close() {
	x.once.Do(func() {
		x.sess.Stdin.Close()
		_, _ = waitTimeout(x.sess, 5*time.Second)
	})
}
