package inventory

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/runbook/runbook/modules"
)

// The parity tests hold runbook's reading of each fixture under testdata/ansible against
// what Ansible itself prints for it. Expected output is committed under testdata/golden,
// so the comparison runs everywhere; where ansible-inventory is installed the goldens are
// also checked against it, and -update rewrites them from it.

var update = flag.Bool("update", false, "rewrite testdata/golden from the real ansible-inventory")

type fixture struct {
	name        string
	dir         string
	sources     []string // absolute paths
	hosts       []string // checked with --host
	patterns    []string // checked with ansible --list-hosts
	noGraphVars bool
	goldenDir   string
}

func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	dirs, err := filepath.Glob("testdata/ansible/*/fixture.txt")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures under testdata/ansible: %v", err)
	}
	var out []fixture
	for _, file := range dirs {
		dir := filepath.Dir(file)
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		fx := fixture{name: filepath.Base(dir), dir: abs, goldenDir: filepath.Join("testdata", "golden", filepath.Base(dir))}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(src), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			key, val, _ := strings.Cut(line, " ")
			switch key {
			case "source":
				fx.sources = append(fx.sources, filepath.Join(abs, val))
			case "host":
				fx.hosts = append(fx.hosts, val)
			case "pattern":
				fx.patterns = append(fx.patterns, val)
			case "nograph-vars":
				fx.noGraphVars = true
			default:
				t.Fatalf("%s: unknown directive %q", file, key)
			}
		}
		if len(fx.sources) == 0 {
			t.Fatalf("%s names no source", file)
		}
		out = append(out, fx)
	}
	return out
}

// realAnsible reports whether to compare with the real tools: they must be installed,
// and with -short they are not run. Outside CI a missing tool only skips the
// comparison; in CI (CI=true) it fails the test.
func realAnsible(t *testing.T) bool {
	t.Helper()
	if testing.Short() && os.Getenv("CI") != "true" && !*update {
		t.Log("-short: comparing with the committed goldens only")
		return false
	}
	for _, tool := range []string{"ansible-inventory", "ansible", "ansible-playbook"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s must be installed in CI (Debian package ansible-core): the inventory parity tests compare against it", tool)
			}
			t.Logf("%s is not installed: comparing with the committed goldens only", tool)
			return false
		}
	}
	return true
}

var (
	ansibleEnvOnce sync.Once
	ansibleEnvDir  string
)

// runAnsible runs an Ansible command isolated from the machine's configuration: an empty
// config file, a private home and temp dirs, and an empty working directory (Ansible
// reads group_vars beside the current directory too).
func runAnsible(t *testing.T, name string, args ...string) (stdout []byte) {
	t.Helper()
	ansibleEnvOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runbook-ansible-")
		if err != nil {
			panic(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ansible.cfg"), nil, 0o644); err != nil {
			panic(err)
		}
		if err := os.Mkdir(filepath.Join(dir, "cwd"), 0o755); err != nil {
			panic(err)
		}
		ansibleEnvDir = dir
	})
	dir := ansibleEnvDir
	cmd := exec.CommandContext(context.Background(), name, args...)
	cmd.Dir = filepath.Join(dir, "cwd")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"LANG=C.UTF-8", "LC_ALL=C.UTF-8",
		"PYTHONDONTWRITEBYTECODE=1",
		"ANSIBLE_CONFIG=" + filepath.Join(dir, "ansible.cfg"),
		"ANSIBLE_HOME=" + filepath.Join(dir, "ansible-home"),
		"ANSIBLE_LOCAL_TEMP=" + filepath.Join(dir, "tmp"),
		"ANSIBLE_REMOTE_TEMP=" + filepath.Join(dir, "remote-tmp"),
		"ANSIBLE_COLLECTIONS_PATH=" + filepath.Join(dir, "collections"),
		"ANSIBLE_ROLES_PATH=" + filepath.Join(dir, "roles"),
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_VERBOSITY=0",
		"ANSIBLE_DEPRECATION_WARNINGS=0",
		"ANSIBLE_SYSTEM_WARNINGS=0",
		"ANSIBLE_LOCALHOST_WARNING=0",
		"ANSIBLE_HOST_PATTERN_MISMATCH=ignore",
		"ANSIBLE_RETRY_FILES_ENABLED=0",
		// a fixture Ansible cannot read must fail loudly, not become an empty inventory
		"ANSIBLE_INVENTORY_UNPARSED_FAILED=1",
		"ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED=1",
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

func (fx fixture) iArgs() []string {
	var args []string
	for _, s := range fx.sources {
		args = append(args, "-i", s)
	}
	return args
}

// ansibleOutputs is everything the real tools print for a fixture, as stored in goldens.
type ansibleOutputs struct {
	list      []byte
	graph     []byte
	graphVars []byte
	hosts     map[string]json.RawMessage
	patterns  map[string][]string
}

// fromAnsible runs the real tools on a fixture. To keep the suite fast when only
// checking, the plain graph is cut out of the --graph --vars output and only the first
// host is asked with --host (the others are its --list entries, which ansible-inventory
// computes the same way); -update runs every command.
func (fx fixture) fromAnsible(t *testing.T, everything bool) ansibleOutputs {
	var o ansibleOutputs
	o.list = runAnsible(t, "ansible-inventory", append(fx.iArgs(), "--list")...)
	if !fx.noGraphVars {
		o.graphVars = runAnsible(t, "ansible-inventory", append(fx.iArgs(), "--graph", "--vars")...)
	}
	if everything || fx.noGraphVars {
		o.graph = runAnsible(t, "ansible-inventory", append(fx.iArgs(), "--graph")...)
	} else {
		o.graph = withoutVarLines(o.graphVars)
	}
	o.hosts = map[string]json.RawMessage{}
	for i, h := range fx.hosts {
		if everything || i == 0 {
			o.hosts[h] = json.RawMessage(bytes.TrimSpace(runAnsible(t, "ansible-inventory", append(fx.iArgs(), "--host", h)...)))
		} else {
			o.hosts[h] = listEntry(t, o.list, h)
		}
	}
	o.patterns = ansiblePatterns(t, fx.sources, fx.patterns)
	return o
}

var reGraphVarLine = regexp.MustCompile(`^(?:  \|)*--\{[^ ]* = `)

// withoutVarLines turns --graph --vars output into --graph output. A value with line
// breaks spans several lines, up to the one that closes its brace.
func withoutVarLines(graph []byte) []byte {
	var out []string
	inVar := false
	for _, line := range strings.Split(string(graph), "\n") {
		switch {
		case inVar:
			inVar = !strings.HasSuffix(line, "}")
		case reGraphVarLine.MatchString(line):
			inVar = !strings.HasSuffix(line, "}")
		default:
			out = append(out, line)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

// listEntry is a host's _meta.hostvars entry in --list output, {} when it has none.
func listEntry(t *testing.T, list []byte, host string) json.RawMessage {
	t.Helper()
	var l struct {
		Meta struct {
			Hostvars map[string]json.RawMessage `json:"hostvars"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(reNonFinite.ReplaceAll(list, []byte(`$1"$2"`)), &l); err != nil {
		t.Fatal(err)
	}
	if e, ok := l.Meta.Hostvars[host]; ok {
		return e
	}
	return json.RawMessage("{}")
}

// ansiblePatterns asks Ansible which hosts each pattern selects. One ansible-playbook
// run with a play per pattern and --list-hosts answers them all, which is much cheaper
// than one ansible run per pattern and uses the same pattern code.
func ansiblePatterns(t *testing.T, sources, patterns []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	if len(patterns) == 0 {
		return out
	}
	var pb strings.Builder
	for i, p := range patterns {
		q, _ := json.Marshal(p)
		fmt.Fprintf(&pb, "- name: p%d\n  hosts: %s\n  gather_facts: false\n  tasks: []\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "patterns.yml")
	if err := os.WriteFile(path, []byte(pb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, s := range sources {
		args = append(args, "-i", s)
	}
	res := runAnsible(t, "ansible-playbook", append(args, "--list-hosts", path)...)
	play := -1
	inHosts := false
	for _, line := range strings.Split(string(res), "\n") {
		if m := rePlayHeader.FindStringSubmatch(line); m != nil {
			play, _ = strconv.Atoi(m[1])
			inHosts = false
			if play < len(patterns) {
				out[patterns[play]] = []string{}
			}
			continue
		}
		if reListHostsHeader.MatchString(line) {
			inHosts = true
			continue
		}
		if inHosts && strings.TrimSpace(line) != "" && play >= 0 && play < len(patterns) {
			out[patterns[play]] = append(out[patterns[play]], strings.TrimSpace(line))
		}
	}
	// ansible-playbook lists a play's hosts through a set, so the order means nothing
	for p := range out {
		sort.Strings(out[p])
	}
	if len(out) != len(patterns) {
		t.Fatalf("ansible-playbook --list-hosts answered %d of %d patterns:\n%s", len(out), len(patterns), res)
	}
	return out
}

var rePlayHeader = regexp.MustCompile(`^\s*play #\d+ \(.*\): p(\d+)\s`)

var reListHostsHeader = regexp.MustCompile(`^\s*hosts \(\d+\):\s*$`)

func parseListHosts(out []byte) []string {
	hosts := []string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	started := false
	for sc.Scan() {
		line := sc.Text()
		if reListHostsHeader.MatchString(line) {
			started = true
			continue
		}
		if started && strings.TrimSpace(line) != "" {
			hosts = append(hosts, strings.TrimSpace(line))
		}
	}
	return hosts
}

func (fx fixture) writeGolden(t *testing.T, o ansibleOutputs) {
	if err := os.MkdirAll(fx.goldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(fx.goldenDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("list.json", o.list)
	write("graph.txt", o.graph)
	if o.graphVars != nil {
		write("graph-vars.txt", o.graphVars)
	}
	for h, b := range o.hosts {
		write(hostGoldenName(h), append(bytes.TrimSpace(b), '\n'))
	}
	var pj bytes.Buffer
	enc := json.NewEncoder(&pj)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(o.patterns); err != nil {
		t.Fatal(err)
	}
	write("patterns.json", pj.Bytes())
}

// hostGoldenName is the golden file of one --host output; host names may hold ":".
func hostGoldenName(h string) string {
	return "host-" + strings.NewReplacer(":", "%3A", "/", "%2F").Replace(url.PathEscape(h)) + ".json"
}

func (fx fixture) readGolden(t *testing.T) ansibleOutputs {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(fx.goldenDir, name))
		if err != nil {
			t.Fatalf("missing golden (run go test ./inventory -run TestAnsibleParity -update): %v", err)
		}
		return b
	}
	var o ansibleOutputs
	o.list = read("list.json")
	o.graph = read("graph.txt")
	if !fx.noGraphVars {
		o.graphVars = read("graph-vars.txt")
	}
	o.hosts = map[string]json.RawMessage{}
	for _, h := range fx.hosts {
		o.hosts[h] = read(hostGoldenName(h))
	}
	if err := json.Unmarshal(read("patterns.json"), &o.patterns); err != nil {
		t.Fatal(err)
	}
	return o
}

// reNonFinite finds the NaN and Infinity tokens Python's json writes and Go's refuses.
var reNonFinite = regexp.MustCompile(`(:\s*|\[\s*|,\s*)(-?Infinity|NaN)\b`)

// jsonValue decodes ansible-inventory JSON for comparison.
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	b = reNonFinite.ReplaceAll(b, []byte(`$1"$2"`))
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, b)
	}
	return normalizeNumbers(v)
}

// normalizeNumbers makes 1000.0 and 1e3 equal, as they are in JSON.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil && strings.ContainsAny(x.String(), ".eE") {
			return f
		}
		return x.String()
	case []any:
		for i := range x {
			x[i] = normalizeNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalizeNumbers(x[k])
		}
	}
	return v
}

func sameJSON(t *testing.T, what string, want, got []byte) {
	t.Helper()
	w, g := jsonValue(t, want), jsonValue(t, got)
	if !reflect.DeepEqual(w, g) {
		wb, _ := json.MarshalIndent(w, "", " ")
		gb, _ := json.MarshalIndent(g, "", " ")
		t.Errorf("%s differs:\n%s", what, lineDiff(string(wb), string(gb)))
	}
}

func sameText(t *testing.T, what, want, got string) {
	t.Helper()
	if want != got {
		t.Errorf("%s differs:\n%s", what, lineDiff(want, got))
	}
}

// lineDiff shows the lines that differ, marked - for want and + for got.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := max(len(wl), len(gl))
	shown := 0
	for i := 0; i < n && shown < 40; i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			b.WriteString("  line " + strconv.Itoa(i+1) + "\n    - " + w + "\n    + " + g + "\n")
			shown++
		}
	}
	return b.String()
}

// oneLineValues joins the lines of a multi-line value in --graph --vars output with \n, as
// runbook prints them: Ansible prints them as they are, so that they look like lines of
// the tree.
func oneLineValues(graph string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(graph, "\n"), "\n") {
		if k := len(out) - 1; k >= 0 && !strings.HasPrefix(l, "@") && !strings.HasPrefix(l, "  |") {
			out[k] += `\n` + l
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// ours renders what runbook prints for a fixture, in the goldens' shape.
func (fx fixture) ours(t *testing.T) ansibleOutputs {
	inv, diags := Load(context.Background(), fx.sources...)
	if diags.HasErrors() {
		t.Fatalf("Load: %s", diags.Error())
	}
	var o ansibleOutputs
	var err error
	if o.list, err = inv.ListJSON(); err != nil {
		t.Fatal(err)
	}
	var g bytes.Buffer
	if err := inv.Graph(&g, false); err != nil {
		t.Fatal(err)
	}
	o.graph = g.Bytes()
	var gv bytes.Buffer
	if err := inv.Graph(&gv, true); err != nil {
		t.Fatal(err)
	}
	o.graphVars = gv.Bytes()
	o.hosts = map[string]json.RawMessage{}
	for _, h := range fx.hosts {
		b, err := inv.HostJSON(h)
		if err != nil {
			t.Fatal(err)
		}
		o.hosts[h] = b
	}
	o.patterns = map[string][]string{}
	for _, p := range fx.patterns {
		hs, err := inv.Select(p)
		if err != nil {
			t.Fatalf("Select(%q): %v", p, err)
		}
		names := []string{}
		for _, h := range hs {
			names = append(names, h.Name)
		}
		o.patterns[p] = names
	}
	return o
}

func compareOutputs(t *testing.T, who string, fx fixture, want, got ansibleOutputs) {
	t.Helper()
	sameJSON(t, who+" --list", want.list, got.list)
	sameText(t, who+" --graph", string(want.graph), string(got.graph))
	if !fx.noGraphVars {
		sameText(t, who+" --graph --vars", oneLineValues(string(want.graphVars)), oneLineValues(string(got.graphVars)))
	}
	for _, h := range fx.hosts {
		sameJSON(t, who+" --host "+h, want.hosts[h], got.hosts[h])
	}
	for _, p := range fx.patterns {
		// Ansible orders hosts of nested groups through a Python set, so compare as sets
		if w, g := sortedCopy(want.patterns[p]), sortedCopy(got.patterns[p]); !reflect.DeepEqual(w, g) {
			t.Errorf("%s pattern %q: want %v, got %v", who, p, w, g)
		}
	}
}

func TestAnsibleParity(t *testing.T) {
	fixtures := loadFixtures(t)
	haveAnsible := realAnsible(t)
	if *update && !haveAnsible {
		t.Fatal("-update needs ansible-inventory and ansible")
	}
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			if *update {
				fx.writeGolden(t, fx.fromAnsible(t, true))
			}
			golden := fx.readGolden(t)
			got := fx.ours(t)
			// runbook differs from Ansible on purpose in one thing: it prints the values of
			// variables named like secrets as (sensitive value)
			redacted := redactGolden(t, golden)
			compareOutputs(t, "runbook vs golden", fx, redacted, got)
			// every host's --host equals its entry in --list, as in Ansible
			inv, _ := Load(context.Background(), fx.sources...)
			for _, h := range inv.Hosts() {
				b, _ := inv.HostJSON(h.Name)
				sameJSON(t, "HostJSON("+h.Name+")", listEntry(t, redacted.list, h.Name), b)
			}
			if haveAnsible && !*update {
				compareOutputs(t, "golden vs ansible", fx, fx.fromAnsible(t, false), golden)
			}
		})
	}
}

// redactGolden turns what Ansible printed into what runbook prints instead: the value of
// every key named like a secret (SecretVar), at any depth, replaced by (sensitive value),
// and every string holding a private key; a null stays a null, a boolean stays itself.
// Nothing else changes.
func redactGolden(t *testing.T, o ansibleOutputs) ansibleOutputs {
	t.Helper()
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if secretByName(k, e) || privateKeyString(e) {
					x[k] = modules.Redacted
				} else {
					x[k] = walk(e)
				}
			}
		case []any:
			for i := range x {
				if privateKeyString(x[i]) {
					x[i] = modules.Redacted
					continue
				}
				x[i] = walk(x[i])
			}
		}
		return v
	}
	js := func(b []byte) []byte {
		// numbers keep their text (1000.0 stays a float): decoded as json.Number, not
		// normalized as jsonValue does
		dec := json.NewDecoder(bytes.NewReader(reNonFinite.ReplaceAll(b, []byte(`$1"$2"`))))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("invalid JSON: %v\n%s", err, b)
		}
		out, err := json.Marshal(walk(v))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	r := o
	r.list = js(o.list)
	r.hosts = map[string]json.RawMessage{}
	for h, b := range o.hosts {
		r.hosts[h] = js(b)
	}
	// --graph --vars: {KEY = VALUE} lines, VALUE being Python's str(); a mapping inside
	// prints its keys and strings quoted: {'password': 'x'}
	lines := strings.Split(string(o.graphVars), "\n")
	for i, l := range lines {
		m := reGraphVar.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if SecretVar(m[2]) && m[3] != "None" && m[3] != "True" && m[3] != "False" {
			lines[i] = m[1] + m[2] + " = " + modules.Redacted + "}"
			continue
		}
		lines[i] = rePyPair.ReplaceAllStringFunc(l, func(p string) string {
			k := rePyPair.FindStringSubmatch(p)[1]
			if SecretVar(k) {
				return "'" + k + "': '" + modules.Redacted + "'"
			}
			return p
		})
	}
	r.graphVars = []byte(strings.Join(lines, "\n"))
	return r
}

func privateKeyString(v any) bool {
	s, ok := v.(string)
	return ok && privateKeyText(s)
}

var (
	reGraphVar = regexp.MustCompile(`^((?:  \|)*--\{)([^ ]+) = (.*)\}$`)
	rePyPair   = regexp.MustCompile(`'([^']+)': '[^']*'`)
)
