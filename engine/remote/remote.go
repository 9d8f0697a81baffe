// Package remote connects the engine to hosts: one SSH connection per host, the helper
// installed at a content-addressed path (pushed only when missing, and verified before it
// runs: by hash, or, without become, by the identity of the very file this controller hashed
// before; see Stamps), and one helper process per host for the whole run, driven over the
// protocol.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/helperbin"
	"github.com/runbook/runbook/engine/protocol"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/engine/transport"
	"github.com/runbook/runbook/internal/sh"
	"github.com/runbook/runbook/internal/tail"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

// Connector opens executors over SSH. It implements run.Connector.
type Connector struct {
	Dialer *transport.Dialer
	// SSHConfig is the OpenSSH client config file (-F); "" reads the default files.
	SSHConfig string
	// BecomePassword is used for sudo when the inventory gives none for a host.
	BecomePassword string
	// Stamps, when set, lets a start skip hashing a helper file that this controller has
	// verified before (see Stamps); nil hashes at every start.
	Stamps *Stamps
	// Stats counts helper pushes, for reports and tests.
	Stats Stats
}

// Stats counts what the connector did.
type Stats struct {
	mu      sync.Mutex
	Pushed  int // helpers uploaded
	Reused  int // helpers found in place
	Hashed  int // starts that hashed the helper's file
	Stamped int // starts that found the very file verified before (Stamps)
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

// Counts returns the pushed and reused counts.
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
// the OpenSSH options given in ansible_ssh_common_args, then ssh_config for the rest.
func (c *Connector) Target(h *inventory.Host, p *config.Play) (transport.Target, error) {
	conn := h.Connection()
	t := transport.Target{Name: h.Name, Address: conn.Address, Port: conn.Port, User: conn.User,
		IdentityFile: conn.IdentityFile, ProxyJump: conn.ProxyJump}
	opts, err := h.SSHOptions()
	if err != nil {
		return t, fmt.Errorf("%s: %w", h.Name, err)
	}
	if err := applySSHOptions(&t, opts); err != nil {
		return t, fmt.Errorf("%s: ansible_ssh_common_args: %w", h.Name, err)
	}
	if p != nil && p.Become {
		t.BecomeMethod, t.BecomeUser = "sudo", p.BecomeUser
		t.BecomePassword = c.BecomePassword
		for _, k := range []string{"ansible_become_password", "ansible_become_pass"} {
			if s, ok := h.Vars[k].(string); ok && s != "" {
				t.BecomePassword = s
			}
		}
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
	// The inventory already turned ProxyJump (and "ssh -W" ProxyCommands) into the jump host.
	if v := opts["proxycommand"]; v != "" && t.ProxyJump == "" {
		t.ProxyCommand = v
	}
	if v := opts["identitiesonly"]; v != "" {
		t.IdentitiesOnly = strings.EqualFold(v, "yes")
	}
	if v := opts["connecttimeout"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("ConnectTimeout %q is not a number of seconds", v)
		}
		t.ConnectTimeout = time.Duration(n) * time.Second
	}
	return nil
}

// Connect dials the host, makes sure the helper is there and starts it.
func (c *Connector) Connect(ctx context.Context, h *inventory.Host, p *config.Play) (run.Executor, error) {
	t, err := c.Target(h, p)
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
	x, err := c.start(ctx, conn, t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return x, nil
}

// probe is what the controller learns about a host before starting the helper.
type probe struct {
	arch string
	uid  int
	home string
}

func (c *Connector) probe(ctx context.Context, conn *transport.Conn) (probe, error) {
	var out, errb bytes.Buffer
	code, err := conn.Run(ctx, probeLine, nil, &out, &errb)
	if err != nil {
		return probe{}, err
	}
	if code != 0 {
		return probe{}, fmt.Errorf("probe %s: exit %d: %s", conn.Target.Name, code, strings.TrimSpace(errb.String()))
	}
	pr, ok, err := parseProbe(out.String())
	if !ok {
		return probe{}, fmt.Errorf("probe %s: unexpected output %q", conn.Target.Name, strings.TrimSpace(out.String()))
	}
	if err != nil {
		return probe{}, fmt.Errorf("%s: %w", conn.Target.Name, err)
	}
	return pr, nil
}

// probeLine prints what the controller needs to know to place the helper; the fast start
// script prints the same line on stderr when the helper is missing, which saves the
// separate probe session on first contact.
const probeLine = `printf 'runbook-probe\t%s\t%s\t%s\n' "$(uname -m)" "$(id -u)" "$HOME"`

// parseProbe finds a probe line in text; ok is false when there is none.
func parseProbe(text string) (pr probe, ok bool, err error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Split(strings.TrimRight(line, "\r"), "\t")
		if len(f) != 4 || f[0] != "runbook-probe" {
			continue
		}
		uid, uerr := strconv.Atoi(f[2])
		if uerr != nil {
			continue
		}
		arch, aerr := helperbin.Arch(f[1])
		return probe{arch: arch, uid: uid, home: f[3]}, true, aerr
	}
	return probe{}, false, nil
}

// helperDirs lists where the helper may live on a host, best first: a system path for root,
// the user's cache otherwise; the second choice is used when the first is on a noexec mount.
func helperDirs(pr probe) []string {
	home := pr.home
	if home == "" || home == "/" {
		home = "/tmp/runbook-" + strconv.Itoa(pr.uid)
	}
	if pr.uid == 0 {
		return []string{"/var/lib/runbook/helper", home + "/.cache/runbook/helper"}
	}
	return []string{home + "/.cache/runbook/helper"}
}

// hashOf is a shell command printing the sha256 of file first on its line. openssl uses the
// CPU's SHA instructions and is about twice as fast as coreutils' sha256sum on the 4.8 MB
// helper, which every start hashes; sha256sum is the fallback.
func hashOf(file string) string {
	return fmt.Sprintf(`if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "%[1]s" 2>/dev/null; else sha256sum "%[1]s" 2>/dev/null; fi`,
		strings.Trim(file, `"`))
}

// envVerified tells the helper which hash the start script verified its file against
// (cmd/runbook-helper reads it), so it need not hash itself again for its hello.
const envVerified = "RUNBOOK_HELPER_VERIFIED"

// Exit codes of the start script, chosen to not clash with a shell's own (126, 127).
const (
	exitHelperMissing = 97
	// exitNotExecutable is the shell's own code for a file it cannot execute.
	exitNotExecutable = 126
)

// envHow tells the helper how the start script verified it, for its hello
// (protocol.Hello.Verified).
const envHow = "RUNBOOK_HELPER_HOW"

// startScript verifies the helper at path by hash and starts it. With stamp it also reads
// the file's identity first, for the controller to record (Stamps).
func startScript(path, sha string, stamp bool) string {
	// The hash is checked right before exec, so a helper that was altered on the host since
	// it was pushed never runs.
	return fmt.Sprintf(`p=%s; %ss=$(%s) || exit %d; [ "${s%%%% *}" = %s ] || exit %d; export %s=%s %s="hash$f"; exec "$p"`,
		sh.Quote(path), statLine(stamp), hashOf("$p"), exitHelperMissing, sha, exitHelperMissing, envVerified, sha, envHow)
}

// statLine sets f to " STAMP" (the helper file's identity) when stamp is set, else to "".
func statLine(stamp bool) string {
	if !stamp {
		return `f=; `
	}
	return `f=$(stat -L -c ` + sh.Quote(stampFormat) + ` "$p" 2>/dev/null) && f=" $f"; `
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

func (c *Connector) start(ctx context.Context, conn *transport.Conn, t transport.Target) (*Executor, error) {
	if t.User == "root" && (t.BecomeUser == "" || t.BecomeUser == "root") {
		t.BecomeMethod = ""
	}
	if t.BecomeMethod == "" {
		// The usual case, one session: the script picks the helper for the host's machine
		// type and user, verifies its hash and starts it. Only when it is missing (or the
		// login needs become) does the slower path below probe the host and push it.
		key := stampKey(conn.Target.User, conn.Target.Address, conn.Target.Port, conn.HostKey)
		build, expect := c.Stamps.lookup(key)
		script, known := fastStartScript(c.Stamps != nil, build, expect)
		if script != "" {
			x, code, stderr, err := c.launchOut(ctx, conn, t, script, known)
			if err == nil {
				c.Stats.add(false)
				c.noteVerified(key, x.client.Hello(), true)
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
				return c.install(ctx, conn, t, pr)
			}
		}
	}
	pr, err := c.probe(ctx, conn)
	if err != nil {
		return nil, err
	}
	return c.install(ctx, conn, t, pr)
}

// install pushes the helper where pr says it belongs (when it is not there already) and
// starts it.
func (c *Connector) install(ctx context.Context, conn *transport.Conn, t transport.Target, pr probe) (*Executor, error) {
	if pr.uid == 0 && (t.BecomeUser == "" || t.BecomeUser == "root") {
		// Already root: sudo would add nothing but a dependency on sudo being installed.
		t.BecomeMethod = ""
	}
	h, err := helperbin.Get(pr.arch)
	if err != nil {
		return nil, err
	}
	// Without become the login user runs the helper, and the file's identity may be
	// recorded so that later starts need not hash it (Stamps); with become, never.
	direct := t.BecomeMethod == ""
	stamp := direct && c.Stamps != nil
	key := stampKey(conn.Target.User, conn.Target.Address, conn.Target.Port, conn.HostKey)
	var lastErr error
	for _, dir := range helperDirs(pr) {
		path := dir + "/" + h.SHA256
		only := map[string]bool{h.SHA256: true}
		x, code, err := c.launch(ctx, conn, t, startScript(path, h.SHA256, stamp), only)
		if err == nil {
			c.Stats.add(false)
			c.noteVerified(key, x.client.Hello(), direct)
			return x, nil
		}
		if code == exitNotExecutable {
			// There, but it cannot run there (a noexec mount): the next place.
			lastErr = noexecError(t.Name, path, dir, err)
			continue
		}
		if code != exitHelperMissing {
			return nil, err
		}
		if err := c.push(ctx, conn, h, dir, path); err != nil {
			return nil, err
		}
		x, code, err = c.launch(ctx, conn, t, startScript(path, h.SHA256, stamp), only)
		if err == nil {
			c.Stats.add(true)
			c.noteVerified(key, x.client.Hello(), direct)
			return x, nil
		}
		if code != exitNotExecutable {
			return nil, err
		}
		lastErr = noexecError(t.Name, path, dir, err)
	}
	return nil, lastErr
}

func noexecError(host, path, dir string, err error) error {
	return fmt.Errorf("%s: the helper at %s cannot be executed (is %s on a noexec mount?): %w", host, path, dir, err)
}

// push uploads the helper to a temporary name, verifies its hash on the host and renames it
// into place, so a half-written helper never sits at the content-addressed path.
func (c *Connector) push(ctx context.Context, conn *transport.Conn, h *helperbin.Helper, dir, path string) error {
	var errb bytes.Buffer
	if code, err := conn.Run(ctx, "mkdir -p -m 0755 "+sh.Quote(dir), nil, nil, &errb); err != nil || code != 0 {
		return fmt.Errorf("push helper to %s: mkdir %s: exit %d %v %s", conn.Target.Name, dir, code, err, strings.TrimSpace(errb.String()))
	}
	tmp := fmt.Sprintf("%s/.%s.%d.tmp", dir, h.SHA256[:16], time.Now().UnixNano())
	data, err := h.Bytes()
	if err != nil {
		return fmt.Errorf("read the helper for linux/%s: %w", h.Arch, err)
	}
	if err := conn.Upload(ctx, bytes.NewReader(data), tmp, 0o755); err != nil {
		return fmt.Errorf("push helper to %s: %w", conn.Target.Name, err)
	}
	errb.Reset()
	script := fmt.Sprintf(`t=%s; s=$(`+hashOf("$t")+`) && [ "${s%%%% *}" = %s ] && chmod 0755 "$t" && mv -f "$t" %s || { rm -f "$t"; echo "hash mismatch after upload" >&2; exit 1; }`,
		sh.Quote(tmp), h.SHA256, sh.Quote(path))
	if code, err := conn.Run(ctx, script, nil, nil, &errb); err != nil || code != 0 {
		return fmt.Errorf("push helper to %s: verify %s: exit %d %v %s", conn.Target.Name, path, code, err, strings.TrimSpace(errb.String()))
	}
	return nil
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
	if stamp && known[build] && validStamp(expect) {
		skip = fmt.Sprintf(`if [ "$s$f" = %s ]; then export %s=$s %s=stamp; exec "$p"; fi; `,
			sh.Quote(build+" "+expect), envVerified, envHow)
	}
	// bash knows the machine type and uid without a fork (HOSTTYPE, EUID); other shells
	// ask uname and id. A HOSTTYPE that names no helper (a 32-bit bash on a 64-bit
	// kernel) only sends the start down the probe path, which asks uname.
	return fmt.Sprintf(`m=${HOSTTYPE:-$(uname -m)}; u=${EUID:-$(id -u)}; `+
		`miss() { printf 'runbook-probe\t%%s\t%%s\t%%s\n' "$m" "$u" "$HOME" >&2; exit %d; }; `+
		`case "$m" in %s*) miss;; esac; `+
		`case "$HOME" in ""|/) hm=/tmp/runbook-$u;; *) hm=$HOME;; esac; `+
		// The same places, in the same order, as helperDirs; the first that holds the build
		// executable wins. test -x fails on a noexec mount, so a copy left on one is passed
		// over for the next place.
		`if [ "$u" = 0 ]; then set -- /var/lib/runbook/helper "$hm/.cache/runbook/helper"; else set -- "$hm/.cache/runbook/helper"; fi; `+
		`p=; for d do if [ -x "$d/$s" ]; then p="$d/$s"; break; fi; done; [ -n "$p" ] || miss; %s%s`+
		`h=$(`+hashOf("$p")+`) || miss; [ "${h%%%% *}" = "$s" ] || miss; export `+envVerified+`=$s %s="hash$f"; exec "$p"`,
		exitHelperMissing, cases.String(), statLine(stamp), skip, envHow), known
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
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client, err := protocol.NewClient(hctx, sess.Stdout, sess.Stdin)
	if err != nil {
		sess.Stdin.Close()
		code, _ := waitTimeout(sess, 5*time.Second)
		msg := strings.TrimSpace(stderr.String())
		if msg != "" && code != exitHelperMissing {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, code, msg, fmt.Errorf("start helper on %s: %w", t.Name, err)
	}
	if hb := client.Hello().Build; !want[hb] {
		sess.Close()
		return nil, -1, "", fmt.Errorf("start helper on %s: it reports build %s, which is not a helper this runbook started", t.Name, short(hb))
	}
	return &Executor{conn: conn, sess: sess, client: client, stderr: stderr, host: t.Name}, 0, "", nil
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
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMS = time.Until(dl).Milliseconds()
	}
	resp, err := x.client.Call(ctx, req)
	if err != nil {
		if x.conn.Err() != nil {
			return nil, fmt.Errorf("%w: connection to %s lost: %v", run.ErrUnreachable, x.host, x.conn.Err())
		}
		if tail := strings.TrimSpace(x.stderr.String()); tail != "" && x.client.Err() != nil {
			return nil, fmt.Errorf("%w (helper stderr: %s)", err, tail)
		}
		return nil, err
	}
	return resp, nil
}

// Run sends one check or apply request and waits for its response.
func (x *Executor) Run(ctx context.Context, module string, args cty.Value, apply bool) (*modules.Result, error) {
	op := "check"
	if apply {
		op = "apply"
	}
	resp, err := x.call(ctx, &protocol.Request{Op: op, Module: module, Args: args})
	if err != nil {
		return nil, err
	}
	res := &modules.Result{Status: resp.Status, Msg: resp.Msg, Warnings: resp.Warnings, RebootRequired: resp.RebootRequired}
	if resp.Diff != nil {
		res.Diff = &modules.Diff{Before: resp.Diff.Before, After: resp.Diff.After, BeforeHeader: resp.Diff.BeforeHeader, AfterHeader: resp.Diff.AfterHeader}
	}
	if len(resp.Data) > 0 {
		dec := json.NewDecoder(bytes.NewReader(resp.Data))
		dec.UseNumber()
		var data map[string]any
		if err := dec.Decode(&data); err == nil {
			res.Data = data
		}
	}
	if resp.Error != nil {
		return res, &modules.Failure{Msg: resp.Error.Message, Stderr: resp.Error.Stderr}
	}
	return res, nil
}

// Facts asks the helper for the host's facts. It implements run.FactGatherer.
func (x *Executor) Facts(ctx context.Context) (map[string]any, error) {
	resp, err := x.call(ctx, &protocol.Request{Op: protocol.OpFacts})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, &modules.Failure{Msg: resp.Error.Message, Stderr: resp.Error.Stderr}
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

// Close ends the helper (its stdin closes, it exits) and the connection.
func (x *Executor) Close() error {
	x.once.Do(func() {
		x.sess.Stdin.Close()
		_, _ = waitTimeout(x.sess, 5*time.Second)
		x.conn.Close()
	})
	return nil
}
