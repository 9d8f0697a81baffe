package generic

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/internal/sh"
	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

var (
	_ modules.Runner[cty.Value] = Command{}
	_ modules.Runner[cty.Value] = Shell{}
)

// Run runs the program unless a guard says there is nothing to do.
func (Command) Run(ctx context.Context, env *modules.Env, args cty.Value, apply bool) (*modules.Result, error) {
	var argv []string
	// The line shown is rebuilt from argv, quoted anew: a cmd that is secret as a whole
	// would not be recognised in it, so it is not shown at all.
	hide := false
	if v := args.GetAttr("argv"); !v.IsNull() {
		for i, e := range v.AsValueSlice() {
			if e.IsNull() {
				return nil, fmt.Errorf("argv[%d] is null", i)
			}
			argv = append(argv, e.AsString())
		}
	} else {
		words, err := splitWords(str(args, "cmd"))
		if err != nil {
			return nil, fmt.Errorf("cmd: %w", err)
		}
		argv, hide = words, env.Sensitive("cmd")
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("the command is empty")
	}
	shown := modules.Redacted
	if !hide {
		shown = commandLine(env.Redactor(), argv)
	}
	return runGuarded(ctx, env, args, apply, argv, "/bin/sh", shown)
}

// Run runs the command line with the shell unless a guard says there is nothing to do.
func (Shell) Run(ctx context.Context, env *modules.Env, args cty.Value, apply bool) (*modules.Result, error) {
	sh := str(args, "executable")
	argv := []string{sh, "-c", str(args, "cmd")}
	return runGuarded(ctx, env, args, apply, argv, sh, commandLine(env.Redactor(), argv))
}

// runGuarded is the shared core of command and shell: guards first (they only read, so
// they run in check mode too), then the command itself only when applying. shown is the
// command line as messages show it.
func runGuarded(ctx context.Context, env *modules.Env, args cty.Value, apply bool, argv []string, shell, shown string) (*modules.Result, error) {
	dir := str(args, "chdir")
	var vars []string
	if v := args.GetAttr("env"); !v.IsNull() {
		for k, e := range v.AsValueMap() {
			if e.IsNull() {
				return nil, fmt.Errorf("env %q is null", k)
			}
			vars = append(vars, k+"="+e.AsString())
		}
		sort.Strings(vars)
	}
	okCodes := map[int]bool{}
	if v := args.GetAttr("ok_codes"); !v.IsNull() {
		for _, e := range v.AsValueSlice() {
			if e.IsNull() {
				return nil, fmt.Errorf("ok_codes contains null")
			}
			n, acc := e.AsBigFloat().Int64()
			if acc != big.Exact {
				return nil, fmt.Errorf("ok_codes: %s is not a whole number", e.AsBigFloat().String())
			}
			okCodes[int(n)] = true
		}
	}
	data := map[string]any{"rc": nil, "stdout": "", "stderr": "", "skipped_by": ""}
	skip := func(guard, why string) (*modules.Result, error) {
		data["skipped_by"] = guard
		return &modules.Result{Status: modules.StatusOK, Data: data, Msg: why}, nil
	}
	inDir := func(p string) string {
		if dir != "" && !filepath.IsAbs(p) {
			return filepath.Join(dir, p)
		}
		return p
	}

	if p := str(args, "creates"); p != "" {
		exists, err := pathMatches(inDir(p))
		if err != nil {
			return nil, fmt.Errorf("creates: %w", err)
		}
		if exists {
			return skip("creates", fmt.Sprintf("not run: %s exists", p))
		}
	}
	if p := str(args, "removes"); p != "" {
		exists, err := pathMatches(inDir(p))
		if err != nil {
			return nil, fmt.Errorf("removes: %w", err)
		}
		if !exists {
			return skip("removes", fmt.Sprintf("not run: %s does not exist", p))
		}
	}
	if u := str(args, "unless"); u != "" {
		guard, err := host.Exec{Env: env}.Run(ctx, host.Cmd{Argv: []string{shell, "-c", u}, Dir: dir, Env: vars, User: true})
		if err != nil {
			return nil, fmt.Errorf("unless: %w", err)
		}
		if guard.RC == 0 {
			return skip("unless", "not run: the unless command succeeded")
		}
		env.Log().Debug("unless guard failed; the command will run", "rc", guard.RC, "stderr", guard.Stderr)
	}

	if !apply {
		return &modules.Result{Status: modules.StatusDrift, Data: data, Msg: "would run: " + shown}, nil
	}
	out, err := host.Exec{Env: env}.Run(ctx, host.Cmd{Argv: argv, Dir: dir, Env: vars, Stdin: str(args, "stdin"), User: true})
	rc, stderr := out.RC, out.Stderr
	data["stdout"], data["stderr"] = out.Stdout, stderr
	if rc >= 0 {
		data["rc"] = rc
	}
	res := &modules.Result{Status: modules.StatusChanged, Data: data, Msg: "ran: " + shown}
	if err != nil {
		return res, &modules.Failure{Msg: err.Error(), Stderr: stderr}
	}
	if !okCodes[rc] {
		codes := make([]int, 0, len(okCodes))
		for c := range okCodes {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		return res, &modules.Failure{Msg: fmt.Sprintf("%s exited with %d (accepted: %v)", shown, rc, codes), Stderr: stderr}
	}
	return res, nil
}

// pathMatches reports whether p exists, or, when p is a glob, whether anything matches it.
func pathMatches(p string) (bool, error) {
	if strings.ContainsAny(p, "*?[") {
		m, err := filepath.Glob(p)
		if err != nil {
			return false, fmt.Errorf("bad pattern %q: %w", p, err)
		}
		return len(m) > 0, nil
	}
	_, err := os.Lstat(p)
	if err == nil {
		return true, nil
	}
	if os.IsNotExist(err) {
		return false, nil
	}
	return false, err
}

// maxCommandLine bounds the command line in messages, so a long script does not flood
// the output.
const maxCommandLine = 200

// commandLine renders argv for messages: redacted, then shortened. Each word is redacted
// before it is quoted, since quoting can split a secret (one with a quote in it).
func commandLine(red *modules.Redactor, argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		a = red.Redact(a)
		// The placeholder is not shell text; only the rest of the word decides the quoting.
		if plain := strings.ReplaceAll(a, modules.Redacted, "x"); plain == "" || strings.ContainsAny(plain, " \t\n'\"\\$`*?[]{}();&|<>") {
			parts[i] = sh.Quote(a)
		} else {
			parts[i] = a
		}
	}
	line := strings.Join(parts, " ")
	s, kept := red.Clip(line, maxCommandLine)
	if kept < len(line) {
		s += "…"
	}
	return s
}
