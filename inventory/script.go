package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/runbook/runbook/internal/tail"
)

// An executable inventory prints Ansible's inventory-script JSON when run with --list:
// groups with hosts, vars and children, and usually _meta.hostvars. Without _meta the
// script is asked for each host's variables with --host NAME, as Ansible does.

// hostVarsFunc returns a host's variables from its --host run; more is false when no other
// host's run could succeed (the time is up), so none is tried.
type hostVarsFunc func(host string) (vars map[string]any, diags hcl.Diagnostics, more bool)

// parseListJSON reads the --list output in f into m.
func parseListJSON(f *srcFile, m *model, hostVars hostVarsFunc) hcl.Diagnostics {
	if !json.Valid(f.src) {
		var v any
		err := json.Unmarshal(f.src, &v)
		rng := f.rng(0, 0)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off := int(se.Offset)
			if off > 0 {
				off--
			}
			rng = f.rng(off, min(off+1, len(f.src)))
		}
		msg := "the output is empty"
		if err != nil && len(bytes.TrimSpace(f.src)) > 0 {
			msg = err.Error()
		}
		return hcl.Diagnostics{errorf(rng, "Invalid inventory script output", "This is not valid JSON: %s.", msg)}
	}
	root, err := jsonNodes(f)
	if err != nil {
		return hcl.Diagnostics{errorf(f.rng(0, 0), "Invalid inventory script output", "The --list output cannot be read: %s.", err)}
	}
	d := &yamlDoc{f: f, root: root, json: true, budget: yamlNodeBudget}
	if root.Kind != yaml.MappingNode {
		return hcl.Diagnostics{errorf(nodeRange(f, root), "Invalid inventory script output",
			"The --list output must be a JSON object of groups, e.g. {\"web\": {\"hosts\": [\"web1\"]}, \"_meta\": {\"hostvars\": {}}}.")}
	}
	r := &scriptReader{d: d, m: m, seen: map[string]bool{}}
	var meta *yaml.Node
	mds := d.mapping(root, 0, func(k string, kn, vn *yaml.Node) {
		if k == "_meta" {
			if vn.Kind != yaml.MappingNode {
				r.errorf(vn, "Invalid inventory script output", "_meta must be an object holding \"hostvars\".")
				return
			}
			_ = d.mapping(vn, 1, func(mk string, _, mv *yaml.Node) {
				if mk == "hostvars" {
					meta = mv
				}
			})
			return
		}
		r.group(k, kn, vn)
	})
	r.diags = append(r.diags, mds...)
	if r.diags.HasErrors() {
		return r.diags
	}
	var fromMeta map[string]*yaml.Node
	if meta != nil {
		if meta.Kind != yaml.MappingNode {
			r.errorf(meta, "Invalid inventory script output", "_meta.hostvars must be an object of host names to variables.")
			return r.diags
		}
		fromMeta = map[string]*yaml.Node{}
		_ = d.mapping(meta, 1, func(h string, _, v *yaml.Node) { fromMeta[h] = v })
	}
	for _, name := range r.hosts {
		var vars map[string]any
		if meta != nil {
			vn, ok := fromMeta[name]
			if !ok {
				continue
			}
			v, diags := d.value(vn)
			r.diags = append(r.diags, diags...)
			mv, isMap := v.(map[string]any)
			if !isMap {
				r.errorf(vn, "Invalid host variables", "_meta.hostvars[%q] must be an object of variables, not %s.", name, pyRepr(v))
				continue
			}
			vars = mv
		} else if hostVars != nil {
			v, diags, more := hostVars(name)
			r.diags = append(r.diags, diags...)
			if !more {
				break
			}
			vars = v
		}
		h := m.hosts[name]
		warned := false
		for _, k := range sortedKeys(vars) {
			redirected, err := m.setHostVar(h, k, vars[k])
			if err != nil {
				r.diags = append(r.diags, errorf(f.rng(0, 0), "Invalid group priority", "%s.", err))
			}
			if redirected && !warned {
				warned = true
				r.diags = append(r.diags, sameNameDiag(f.rng(0, 0), name))
			}
		}
	}
	return r.diags
}

type scriptReader struct {
	d     *yamlDoc
	m     *model
	diags hcl.Diagnostics
	hosts []string
	seen  map[string]bool
}

func (r *scriptReader) errorf(n *yaml.Node, summary, format string, args ...any) {
	r.diags = append(r.diags, errorf(nodeRange(r.d.f, n), summary, format, args...))
}

func (r *scriptReader) group(name string, kn, vn *yaml.Node) {
	if name == "" {
		r.errorf(kn, "Invalid group name", "A group name cannot be empty.")
		return
	}
	g := r.m.addGroup(name, nodeRange(r.d.f, kn))
	hosts, vars, children := vn, (*yaml.Node)(nil), (*yaml.Node)(nil)
	if vn.Kind == yaml.MappingNode {
		hosts = nil
		found := false
		_ = r.d.mapping(vn, 1, func(k string, _, v *yaml.Node) {
			switch k {
			case "hosts":
				hosts, found = v, true
			case "vars":
				vars, found = v, true
			case "children":
				children, found = v, true
			}
		})
		if !found {
			// {"group": {"var": 1}} is shorthand for a host of the group's name
			hosts = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: name, Style: yaml.DoubleQuotedStyle, Line: kn.Line, Column: kn.Column}}}
			vars = vn
		}
	}
	if hosts != nil {
		if hosts.Kind != yaml.SequenceNode {
			r.errorf(hosts, "Invalid inventory script output", "The hosts of group %q must be a list of host names.", name)
			return
		}
		for _, hn := range hosts.Content {
			v, _ := r.d.value(hn)
			h, ok := v.(string)
			if !ok || h == "" {
				r.errorf(hn, "Invalid host name", "Host names in group %q must be non-empty strings, not %s.", name, pyRepr(v))
				continue
			}
			if !r.seen[h] {
				r.seen[h] = true
				r.hosts = append(r.hosts, h)
			}
			r.m.addHost(h, g, -1)
		}
	}
	if vars != nil {
		if vars.Kind != yaml.MappingNode {
			r.errorf(vars, "Invalid inventory script output", "The vars of group %q must be an object.", name)
		} else {
			mds := r.d.mapping(vars, 1, func(k string, _, v *yaml.Node) {
				val, diags := r.d.value(v)
				r.diags = append(r.diags, diags...)
				if err := r.m.setGroupVar(g, k, val); err != nil {
					r.errorf(v, "Invalid group priority", "%s.", err)
				}
			})
			r.diags = append(r.diags, mds...)
		}
	}
	if children != nil {
		if children.Kind != yaml.SequenceNode {
			r.errorf(children, "Invalid inventory script output", "The children of group %q must be a list of group names.", name)
			return
		}
		for _, cn := range children.Content {
			v, _ := r.d.value(cn)
			c, ok := v.(string)
			if !ok || c == "" {
				r.errorf(cn, "Invalid group name", "Child groups of %q must be non-empty strings, not %s.", name, pyRepr(v))
				continue
			}
			if c == "all" {
				r.diags = append(r.diags, allAsChildDiag(nodeRange(r.d.f, cn), name))
				continue
			}
			child := r.m.addGroup(c, nodeRange(r.d.f, cn))
			if err := r.m.addChild(g, child); err != nil {
				if ce, ok := err.(*cycleError); ok {
					r.diags = append(r.diags, cycleDiag(nodeRange(r.d.f, cn), ce))
				}
			}
		}
	}
}

// runScript runs an executable inventory and reads its output into m. Diagnostics point
// at the script itself; where the output is at fault, the detail says where in it. The
// script's --list run and its --host runs share one timeout.
func runScript(ctx context.Context, path string, m *model, opts LoadOptions) hcl.Diagnostics {
	subject := scriptSubject(path)
	timeout := opts.scriptTimeout()
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errScriptTimeout)
	defer cancel()
	r := &scriptRun{path: path, subject: subject, env: ScriptEnv(opts.environ()), timeout: timeout, maxOutput: opts.maxOutput()}
	out, diags := r.run(ctx, "--list")
	if diags.HasErrors() {
		return diags
	}
	hostVars := func(host string) (map[string]any, hcl.Diagnostics, bool) {
		out, diags := r.run(ctx, "--host", host)
		if diags.HasErrors() {
			// Past the timeout, or once runbook is stopping, one error says it for every
			// host left.
			return nil, diags, ctx.Err() == nil
		}
		if len(bytes.TrimSpace(out)) == 0 {
			return nil, nil, true
		}
		name := fmt.Sprintf("%s --host %s", path, host)
		doc, ds := parseYAMLDoc(name, out)
		if ds.HasErrors() {
			return nil, relocate(ds, subject, "--host "+host), true
		}
		v, ds := doc.value(doc.root)
		if ds.HasErrors() {
			return nil, relocate(ds, subject, "--host "+host), true
		}
		vars, ok := v.(map[string]any)
		if !ok {
			return nil, hcl.Diagnostics{errorf(subject, "Invalid inventory script output",
				"%s --host %s must print a JSON object of variables, not %s.", path, host, pyRepr(v))}, true
		}
		return vars, nil, true
	}
	f := newSrcFile(path+" --list", out)
	return relocate(parseListJSON(f, m, hostVars), subject, "--list")
}

// scriptSubject is the first line of the script, where its diagnostics point.
func scriptSubject(path string) hcl.Range {
	src, _ := readFileLimited(path, 4096)
	return newSrcFile(path, src).lineRange(1)
}

// relocate moves diagnostics about a script's output onto the script, keeping the
// position within the output in the detail.
func relocate(diags hcl.Diagnostics, subject hcl.Range, what string) hcl.Diagnostics {
	for _, d := range diags {
		if d.Subject != nil && d.Subject.Filename != subject.Filename {
			d.Detail = fmt.Sprintf("In what %s %s printed, at line %d, column %d: %s", subject.Filename, what, d.Subject.Start.Line, d.Subject.Start.Column, d.Detail)
			s := subject
			d.Subject = &s
		}
	}
	return diags
}

var (
	errScriptTimeout = errors.New("inventory timeout")
	errOutputTooLong = errors.New("output over the limit")
)

// scriptWaitDelay is how long a run waits, once the script has exited or been killed, for
// the pipes to close: a process that escaped the script's process group and still holds
// its standard output cannot keep Load waiting longer than this.
const scriptWaitDelay = time.Second

// stderrTail is how much of the end of a script's standard error an error message quotes.
const stderrTail = 2000

// scriptRun is one executable inventory being read: the same environment and limits for
// its --list run and each --host run.
type scriptRun struct {
	path      string
	subject   hcl.Range
	env       []string
	timeout   time.Duration
	maxOutput int64
}

// run runs the script once with args. The script starts in a process group of its own,
// and when the run ends (the script exited, the timeout, cancellation, too much output)
// that whole group is killed, so the children it started (which may hold its standard
// output open) go with it. A process that left the group (setsid) is out of reach.
func (r *scriptRun) run(ctx context.Context, args ...string) ([]byte, hcl.Diagnostics) {
	what := r.path + " " + strings.Join(args, " ")
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	stdout := &cappedBuffer{limit: r.maxOutput, full: func() { stop(errOutputTooLong) }}
	stderr := &tail.Buffer{Max: stderrTail}
	name := r.path
	if !strings.ContainsRune(name, os.PathSeparator) {
		// the file named, not a program of that name found in $PATH
		name = "./" + name
	}
	// Not exec.CommandContext: its Cancel would signal the group at a moment of its own
	// choosing, possibly after the script was reaped; stopGroup kills it before that.
	cmd := exec.Command(name, args...)
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = scriptWaitDelay
	if ctx.Err() != nil {
		// the time is up already: not worth starting
		return nil, r.failure(what, context.Cause(ctx), true, stderr)
	}
	if err := cmd.Start(); err != nil {
		return nil, hcl.Diagnostics{errorf(r.subject, "Inventory script failed", "%s failed: %s.", what, err)}
	}
	stopped := stopGroup(ctx, cmd.Process.Pid)
	err := cmd.Wait()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The script exited successfully, but a process that left its group still holds
		// its output: what the script printed is all there.
		err = nil
	}
	if stopped || stdout.over {
		err = context.Cause(ctx)
	}
	if err != nil {
		return nil, r.failure(what, err, stopped, stderr)
	}
	if !utf8.Valid(stdout.Bytes()) {
		return nil, hcl.Diagnostics{errorf(r.subject, "Invalid inventory script output", "%s printed text that is not UTF-8.", what)}
	}
	return stdout.Bytes(), nil
}

// failure is the error of a run that did not succeed: err is why, and stopped says that
// runbook stopped it.
func (r *scriptRun) failure(what string, err error, stopped bool, stderr *tail.Buffer) hcl.Diagnostics {
	switch {
	case errors.Is(err, errOutputTooLong):
		return hcl.Diagnostics{errorf(r.subject, "Inventory script output too large",
			"%s printed more than %s on its standard output, so it was stopped. An inventory script's output is limited to %s.",
			what, sizeText(r.maxOutput), sizeText(r.maxOutput))}
	case errors.Is(err, errScriptTimeout):
		return hcl.Diagnostics{errorf(r.subject, "Inventory script timed out",
			"%s did not finish within %s, so it was killed with every process still in its process group. Raise the limit with --inventory-timeout or %s.%s",
			what, r.timeout, TimeoutEnvVar, stderrQuote(stderr))}
	case stopped:
		return hcl.Diagnostics{errorf(r.subject, "Inventory script failed", "%s was stopped: %s.", what, err)}
	}
	return hcl.Diagnostics{errorf(r.subject, "Inventory script failed", "%s failed: %s. %s%s", what, err, passEnvHint, stderrQuote(stderr))}
}

// passEnvHint follows a failed script's exit status: a script that fails for want of a
// variable usually says so only in its own words.
const passEnvHint = "The script gets only part of runbook's environment; name the other variables it needs in " + PassEnvVar + "."

// stopGroup waits until the process pid (the leader of its own process group) exits or ctx
// ends, then kills the process and its whole group, and returns whether ctx ended first.
// It kills while the leader is not yet reaped (at most a zombie, since only cmd.Wait reaps
// it, and that comes later), so the group's ID, which is the leader's PID, cannot have
// been reused by an unrelated process group. The leader is killed by its PID too, in case
// it moved itself to another group; when stopGroup returns it has exited.
func stopGroup(ctx context.Context, pid int) (stopped bool) {
	exited := make(chan error, 1)
	go func() {
		var info unix.Siginfo
		for {
			// WNOWAIT: learn that it exited, and leave it to be reaped by cmd.Wait
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				exited <- err
				return
			}
		}
	}()
	var err error
	select {
	case err = <-exited:
	case <-ctx.Done():
		stopped = true
	}
	if err != nil {
		// Not a child of ours to wait for: nothing tells us the PID is still its, so
		// nothing is killed.
		return stopped
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if stopped {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		// wait for the exit, so that the goroutine is done before cmd.Wait reaps the
		// process and its PID may be reused
		<-exited
	}
	return stopped
}

func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// cappedBuffer keeps what is written up to limit bytes; the write that would go over it
// calls full and fails, so nothing past the limit is kept or read. It grows by doubling
// but never past the limit, so it allocates at most about twice the limit in all.
type cappedBuffer struct {
	buf   []byte
	limit int64
	full  func()
	over  bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.over || int64(len(b.buf))+int64(len(p)) > b.limit {
		if !b.over {
			b.over = true
			b.full()
		}
		return 0, errOutputTooLong
	}
	if need := len(b.buf) + len(p); need > cap(b.buf) {
		grown := make([]byte, len(b.buf), min(max(2*cap(b.buf), need, 4096), int(b.limit)))
		copy(grown, b.buf)
		b.buf = grown
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Bytes returns what was kept.
func (b *cappedBuffer) Bytes() []byte { return b.buf }

// stderrQuote is the text for an error message: a blank line and the end of what the
// script wrote to standard error, or nothing.
func stderrQuote(b *tail.Buffer) string {
	s := b.String()
	cut := len(s) >= b.Max
	if cut {
		// start on a whole character
		for len(s) > 0 && !utf8.RuneStart(s[0]) {
			s = s[1:]
		}
	}
	msg := strings.TrimSpace(s)
	if msg == "" {
		return ""
	}
	if cut {
		msg = "..." + msg
	}
	return "\n\n" + msg
}

// PassEnvVar names more variables for inventory scripts to get: names separated by spaces
// or commas, each a name or a prefix ending in "*" ("AWS_*"); "*" alone passes everything.
const PassEnvVar = "RUNBOOK_INVENTORY_PASSENV"

// scriptEnvNames and scriptEnvPrefixes are what every inventory script gets from the
// environment: what a program needs to find its tools, home, user, locale, time zone and
// temporary directory; the proxy and CA settings a script needs to reach its API; the
// Ansible settings that say where Ansible's files are and how to print (by name: other
// ANSIBLE_ variables carry passwords, ANSIBLE_BECOME_PASS, ANSIBLE_NET_PASSWORD); and
// variables meant for inventories. Nothing else passes (runbook's variables, the SSH
// agent's socket, cloud credentials) unless PassEnvVar names it. This keeps secrets from
// reaching a script by accident; it does not confine a script, which runs as the operator.
var (
	scriptEnvNames = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
		"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
		"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
		"ANSIBLE_CONFIG", "ANSIBLE_HOME", "ANSIBLE_INVENTORY", "ANSIBLE_LOCAL_TEMP",
		"ANSIBLE_NOCOLOR", "ANSIBLE_FORCE_COLOR", "ANSIBLE_VERBOSITY"}
	scriptEnvPrefixes = []string{"LC_", "RUNBOOK_INVENTORY_"}
)

// ScriptEnv is the environment inventory scripts run with: the variables of environ that
// scriptEnvNames, scriptEnvPrefixes and PassEnvVar allow, in environ's order.
func ScriptEnv(environ []string) []string {
	names := append([]string(nil), scriptEnvNames...)
	prefixes := append([]string(nil), scriptEnvPrefixes...)
	all := false
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if k != PassEnvVar {
			continue
		}
		for _, n := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			switch p, ok := strings.CutSuffix(n, "*"); {
			case n == "*":
				all = true
			case ok:
				prefixes = append(prefixes, p)
			default:
				names = append(names, n)
			}
		}
	}
	// not nil: a nil environment would make exec pass runbook's whole environment
	out := []string{}
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		pass := all || slices.Contains(names, k)
		for _, p := range prefixes {
			pass = pass || strings.HasPrefix(k, p)
		}
		if pass {
			out = append(out, kv)
		}
	}
	return out
}
