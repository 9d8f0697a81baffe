package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/runbook/runbook/inventory/vault"
)

// Load reads inventory sources and merges them in order, as Ansible merges several -i
// options: a file (HCL, INI, YAML or JSON), an executable inventory script, a directory
// (every inventory file in it), or a comma-separated host list. group_vars/ and
// host_vars/ beside each source are applied. On errors the inventory is nil. Scripts run
// with the defaults of LoadOptions.
func Load(ctx context.Context, paths ...string) (*Inventory, hcl.Diagnostics) {
	return LoadWith(ctx, LoadOptions{}, paths...)
}

// LoadOptions bound what executable inventories may do.
type LoadOptions struct {
	// ScriptTimeout bounds each executable inventory: its --list run and all its --host
	// runs together. 0 means DefaultScriptTimeout.
	ScriptTimeout time.Duration
	// Environ is the environment that ScriptEnv filters for scripts, as "NAME=value"
	// pairs; nil means the process environment.
	Environ []string

	// Vault holds the passwords for values encrypted with Ansible Vault: inline !vault
	// values in YAML files, and whole encrypted inventory, group_vars and host_vars
	// files. With a Keyring, possibly empty, every vault value is decrypted (and is a
	// secret, see VaultedString) or is a located error. Without one, inline values are kept
	// encrypted as ansible-inventory --list prints them ({"__ansible_vault": ...}) and an
	// encrypted file is an error.
	Vault *vault.Keyring

	// outputLimit replaces MaxScriptOutput (in tests).
	outputLimit int64
}

// DefaultScriptTimeout is how long an executable inventory may take, --list and --host
// runs together, unless LoadOptions says otherwise.
const DefaultScriptTimeout = 60 * time.Second

// TimeoutEnvVar sets the script timeout for the runbook command when --inventory-timeout
// does not.
const TimeoutEnvVar = "RUNBOOK_INVENTORY_TIMEOUT"

// MaxScriptOutput is how much one run of an inventory script may print on its standard
// output; a script that prints more is stopped and its inventory is an error.
const MaxScriptOutput = 64 << 20

func (o LoadOptions) scriptTimeout() time.Duration {
	if o.ScriptTimeout > 0 {
		return o.ScriptTimeout
	}
	return DefaultScriptTimeout
}

func (o LoadOptions) environ() []string {
	if o.Environ == nil {
		return os.Environ()
	}
	return o.Environ
}

func (o LoadOptions) maxOutput() int64 {
	if o.outputLimit > 0 {
		return o.outputLimit
	}
	return MaxScriptOutput
}

// LoadWith is Load with options for executable inventories.
func LoadWith(ctx context.Context, opts LoadOptions, paths ...string) (*Inventory, hcl.Diagnostics) {
	if len(paths) == 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No inventory", Detail: "Name at least one inventory file or directory."}}
	}
	l := &loader{ctx: ctx, opts: opts, m: newModel(), visited: map[string]bool{}}
	l.m.vault = opts.Vault
	var dirs []string
	for _, p := range paths {
		st, err := os.Stat(p)
		switch {
		case err != nil && strings.Contains(p, ",") && errors.Is(err, fs.ErrNotExist):
			l.hostList(p)
			continue
		case err != nil:
			l.diags = append(l.diags, errorf(fileRange(p), "Inventory not found", "Cannot read the inventory %s: %s.", p, unwrapPathError(err)))
			continue
		case st.IsDir():
			l.dir(p, 0)
			dirs = append(dirs, p)
		default:
			l.file(p, st)
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	if l.diags.HasErrors() {
		sortDiags(l.diags)
		return nil, l.diags
	}
	l.m.reconcile()
	vf := newVarFiles(dirs)
	vf.vault = opts.Vault
	vf.preload(l.m)
	l.diags = append(l.diags, vf.diags...)
	sortDiags(l.diags)
	if l.diags.HasErrors() {
		return nil, l.diags
	}
	return build(l.m, vf), l.diags
}

// sortDiags orders diagnostics by file (in the order files were first named) and position.
func sortDiags(diags hcl.Diagnostics) {
	fileAt := map[string]int{}
	for _, d := range diags {
		if d.Subject != nil {
			if _, ok := fileAt[d.Subject.Filename]; !ok {
				fileAt[d.Subject.Filename] = len(fileAt)
			}
		}
	}
	key := func(d *hcl.Diagnostic) (int, int) {
		if d.Subject == nil {
			return -1, 0
		}
		return fileAt[d.Subject.Filename], d.Subject.Start.Byte
	}
	sort.SliceStable(diags, func(i, j int) bool {
		fi, bi := key(diags[i])
		fj, bj := key(diags[j])
		if fi != fj {
			return fi < fj
		}
		return bi < bj
	})
}

// Parse reads one inventory from memory. The format comes from the file name's
// extension, or from the content when there is none. Executable inventories and
// group_vars/host_vars files are not read. On errors the inventory is nil.
func Parse(filename string, src []byte) (*Inventory, hcl.Diagnostics) {
	m := newModel()
	diags := parseData(filename, src, m)
	sortDiags(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	m.reconcile()
	return build(m, newVarFiles(nil)), diags
}

type loader struct {
	ctx     context.Context
	opts    LoadOptions
	m       *model
	diags   hcl.Diagnostics
	visited map[string]bool
}

const maxInventoryFile = 64 << 20

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return b[:limit], fmt.Errorf("larger than %d MiB", limit>>20)
	}
	return b, nil
}

// ignoredInDir lists what Ansible skips when it reads a directory as an inventory:
// hidden files, the vars folders, and files with these endings. Note that .ini is one.
var ignoredInDir = regexp.MustCompile(`^\.|^host_vars$|^group_vars$|^vars_plugins$|(?:\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.ini|\.cfg|\.retry)$`)

func (l *loader) dir(path string, depth int) {
	real, err := filepath.EvalSymlinks(path)
	if err == nil {
		if l.visited[real] || depth > 20 {
			return
		}
		l.visited[real] = true
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		l.diags = append(l.diags, errorf(fileRange(path), "Cannot read inventory directory", "%s.", unwrapPathError(err)))
		return
	}
	for _, e := range entries {
		if ignoredInDir.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(path, e.Name())
		st, err := os.Stat(p)
		if err != nil {
			l.diags = append(l.diags, errorf(fileRange(p), "Cannot read inventory file", "%s.", unwrapPathError(err)))
			continue
		}
		if st.IsDir() {
			l.dir(p, depth+1)
			continue
		}
		l.file(p, st)
	}
}

func (l *loader) file(path string, st fs.FileInfo) {
	ext := strings.ToLower(filepath.Ext(path))
	switch ext {
	case ".hcl", ".ini", ".yml", ".yaml":
	default:
		if st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			l.diags = append(l.diags, runScript(l.ctx, path, l.m, l.opts)...)
			return
		}
	}
	src, err := readFileLimited(path, maxInventoryFile)
	if err != nil {
		l.diags = append(l.diags, errorf(fileRange(path), "Cannot read inventory file", "%s.", unwrapPathError(err)))
		return
	}
	if vault.IsEncrypted(src) {
		plain, diags := decryptFile(path, src, l.opts.Vault)
		if diags.HasErrors() {
			l.diags = append(l.diags, diags...)
			return
		}
		before := len(l.m.horder)
		l.m.decrypted = true
		pdiags := parseData(path, plain, l.m)
		l.m.decrypted = false
		if pdiags.HasErrors() {
			l.diags = append(l.diags, hideDecrypted(pdiags)...)
			return
		}
		// every string of an encrypted inventory is a secret: its hosts' and groups'
		// variables (names of hosts and groups are not values, and stay readable)
		for _, h := range l.m.horder[before:] {
			markVaulted(h.vars)
		}
		for _, g := range l.m.gorder {
			if g.decl.Filename == path {
				markVaulted(g.vars)
			}
		}
		l.diags = append(l.diags, hideDecrypted(pdiags)...)
		return
	}
	l.diags = append(l.diags, parseData(path, src, l.m)...)
}

// hostList reads "web1,web2:2222" as ungrouped hosts, like Ansible's host_list plugin.
func (l *loader) hostList(list string) {
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		name, port, ok := parseAddress(h, false)
		if !ok {
			name, port = h, -1
		}
		l.m.addHost(name, l.m.groups["ungrouped"], port)
	}
}

var reLooksHCL = regexp.MustCompile(`(?m)^[ \t]*(?:host|group)[ \t]+"[^"\n]*"[ \t]*\{`)

// parseData reads one inventory file's content into m, choosing the reader the way
// Ansible tries its plugins: by extension, then YAML before INI.
func parseData(filename string, src []byte, m *model) hcl.Diagnostics {
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".hcl":
		return parseHCL(filename, src, m)
	case ".ini":
		return parseINI(filename, src, m)
	case ".yml", ".yaml", ".json":
		return parseYAMLOrINI(filename, src, m, true)
	}
	if reLooksHCL.Match(src) {
		return parseHCL(filename, src, m)
	}
	return parseYAMLOrINI(filename, src, m, false)
}

// parseYAMLOrINI reads YAML and, when the content is not a YAML mapping, INI, as Ansible
// falls back from its yaml plugin to its ini plugin. When neither fits, the errors of the
// format the file is most likely meant to be are reported.
func parseYAMLOrINI(filename string, src []byte, m *model, preferYAML bool) hcl.Diagnostics {
	doc, ydiags := parseYAMLDoc(filename, src)
	if !ydiags.HasErrors() {
		doc.vault = m.vault
		doc.allSecret = m.decrypted
		diags, handled := parseYAMLInventory(doc, m)
		if handled {
			return diags
		}
		ydiags = diags
	}
	// try INI on a scratch model first, so that a failed attempt leaves no trace
	if idiags := parseINI(filename, src, newModel()); idiags.HasErrors() {
		if preferYAML {
			return ydiags
		}
		return idiags
	}
	return parseINI(filename, src, m)
}

// varFiles finds and caches group_vars/ and host_vars/ files beside each source.
type varFiles struct {
	vault *vault.Keyring
	dirs  []string
	found map[string][]string
	data  map[string]map[string]any
	diags hcl.Diagnostics
}

func newVarFiles(dirs []string) *varFiles {
	return &varFiles{dirs: dirs, found: map[string][]string{}, data: map[string]map[string]any{}}
}

var varExts = []string{"", ".yml", ".yaml", ".json"}

// preload reads every vars file that applies to a group or host of m, so that errors in
// them are reported by Load.
func (vf *varFiles) preload(m *model) {
	for _, g := range m.gorder {
		vf.layer("group_vars", []string{g.name})
	}
	for _, h := range m.horder {
		vf.layer("host_vars", []string{h.name})
	}
}

// layer merges, for each source in order and each name in order, the variables of the
// files found for that name.
func (vf *varFiles) layer(subdir string, names []string) map[string]any {
	out := map[string]any{}
	for _, dir := range vf.dirs {
		for _, name := range names {
			for _, p := range vf.find(dir, subdir, name) {
				for k, v := range vf.load(p) {
					out[k] = v
				}
			}
		}
	}
	return out
}

func (vf *varFiles) find(dir, subdir, name string) []string {
	key := dir + "\x00" + subdir + "\x00" + name
	if f, ok := vf.found[key]; ok {
		return f
	}
	var out []string
	defer func() { vf.found[key] = out }()
	// a name that is a path would read files outside the folder
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, 0) {
		return nil
	}
	base := filepath.Join(dir, subdir)
	st, err := os.Stat(base)
	if err != nil {
		return nil
	}
	if !st.IsDir() {
		if _, warned := vf.found[base]; !warned {
			vf.found[base] = nil
			vf.diags = append(vf.diags, warnf(fileRange(base), "Vars folder is a file", "%s is not a directory, so Ansible and runbook skip it.", base))
		}
		return nil
	}
	for _, ext := range varExts {
		p := filepath.Join(base, name+ext)
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		// the first match wins: "web" hides "web.yml"
		if st.IsDir() {
			out = varDirFiles(p, 0)
		} else {
			out = []string{p}
		}
		break
	}
	return out
}

// varDirFiles lists the files of a vars directory like group_vars/web/, in name order,
// descending into folders without an extension.
func varDirFiles(dir string, depth int) []string {
	if depth > 20 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, ".") || strings.HasSuffix(n, "~") {
			continue
		}
		ext := filepath.Ext(n)
		p := filepath.Join(dir, n)
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		if st.IsDir() && ext == "" {
			out = append(out, varDirFiles(p, depth+1)...)
		} else if st.Mode().IsRegular() && (ext == "" || ext == ".yml" || ext == ".yaml" || ext == ".json") {
			out = append(out, p)
		}
	}
	return out
}

func (vf *varFiles) load(path string) map[string]any {
	if d, ok := vf.data[path]; ok {
		return d
	}
	vf.data[path] = nil
	src, err := readFileLimited(path, maxInventoryFile)
	if err != nil {
		vf.diags = append(vf.diags, errorf(fileRange(path), "Cannot read vars file", "%s.", unwrapPathError(err)))
		return nil
	}
	var vars map[string]any
	var diags hcl.Diagnostics
	if vault.IsEncrypted(src) {
		// a whole encrypted vars file: every string in it is a secret
		plain, ddiags := decryptFile(path, src, vf.vault)
		if ddiags.HasErrors() {
			vf.diags = append(vf.diags, ddiags...)
			return nil
		}
		vars, diags = parseVarsFile(path, plain, vf.vault, true)
		diags = hideDecrypted(diags)
	} else {
		vars, diags = parseVarsFile(path, src, vf.vault, false)
	}
	vf.diags = append(vf.diags, diags...)
	vf.data[path] = vars
	return vars
}

// parseVarsFile reads a group_vars or host_vars file: a YAML or JSON mapping, or nothing.
func parseVarsFile(path string, src []byte, k *vault.Keyring, allSecret bool) (map[string]any, hcl.Diagnostics) {
	doc, diags := parseYAMLDoc(path, src)
	if diags.HasErrors() {
		return nil, diags
	}
	doc.vault = k
	doc.allSecret = allSecret
	v, vdiags := doc.value(doc.root)
	diags = append(diags, vdiags...)
	if diags.HasErrors() {
		return nil, diags
	}
	switch x := v.(type) {
	case map[string]any:
		return x, diags
	case nil:
		return nil, diags
	}
	if !pyTruthy(v) {
		// Ansible ignores a file whose content is false-ish, such as "" or []
		return nil, diags
	}
	return nil, append(diags, errorf(nodeRange(doc.f, doc.root), "Invalid vars file",
		"A vars file holds a mapping of variable names to values, e.g.\n\nntp_server: pool.ntp.org\nbond_mtu: 9100"))
}

// ReadVarsFile reads a YAML (or JSON) file of variable values the way group_vars files
// are read: a mapping of names to values, with inline !vault values decrypted by k, or
// the whole file encrypted with ansible-vault. Every string decrypted is a secret
// (SecretValue). runbook reads --var-file FILE.yml with it.
func ReadVarsFile(path string, src []byte, k *vault.Keyring) (map[string]any, hcl.Diagnostics) {
	if vault.IsEncrypted(src) {
		plain, diags := decryptFile(path, src, k)
		if diags.HasErrors() {
			return nil, diags
		}
		vars, diags := parseVarsFile(path, plain, k, true)
		return vars, hideDecrypted(diags)
	}
	return parseVarsFile(path, src, k, false)
}
