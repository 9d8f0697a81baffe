package generic

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/runbook/runbook/internal/sh"
	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

var (
	_ modules.Runner[commandArgs] = Command{}
	_ modules.Runner[shellArgs]   = Shell{}
)

// commandArgs are command's arguments. Elements of argv, env and ok_codes may be null (a
// variable that is), which Run reports; an ok_code may be a fraction, which Run refuses
// with a message of its own.
type commandArgs struct {
	Cmd     *string            `cty:"cmd"`
	Argv    []*string          `cty:"argv"`
	Chdir   *string            `cty:"chdir"`
	Creates *string            `cty:"creates"`
	Removes *string            `cty:"removes"`
	Unless  *string            `cty:"unless"`
	Env     map[string]*string `cty:"env"`
	Stdin   *string            `cty:"stdin"`
	OKCodes []*float64         `cty:"ok_codes"`
}

// shellArgs are shell's arguments; the guards are command's.
type shellArgs struct {
	Cmd        string             `cty:"cmd"`
	Executable string             `cty:"executable"`
	Chdir      *string            `cty:"chdir"`
	Creates    *string            `cty:"creates"`
	Removes    *string            `cty:"removes"`
	Unless     *string            `cty:"unless"`
	Env        map[string]*string `cty:"env"`
	Stdin      *string            `cty:"stdin"`
	OKCodes    []*float64         `cty:"ok_codes"`
}

// commandResult is what command and shell register.
type commandResult struct {
	// RC is nil when the command did not run (a guard, check mode) or was stopped.
	RC        *int   `cty:"rc"`
	Stdout    string `cty:"stdout"`
	Stderr    string `cty:"stderr"`
	SkippedBy string `cty:"skipped_by"`
}

// guardSpec is what command and shell share: the guards and how the program runs, with env
// as sorted "NAME=value" entries and ok_codes as a set of whole numbers.
type guardSpec struct {
	dir, creates, removes, unless, stdin string
	env                                  []string
	okCodes                              map[int]bool
}

// newGuardSpec checks and canonicalises the arguments command and shell share.
func newGuardSpec(chdir, creates, removes, unless, stdin *string, env map[string]*string, okCodes []*float64) (guardSpec, error) {
	g := guardSpec{dir: deref(chdir), creates: deref(creates), removes: deref(removes), unless: deref(unless), stdin: deref(stdin), okCodes: map[int]bool{}}
	for k, v := range env {
		if v == nil {
			return g, fmt.Errorf("env %q is null", k)
		}
		g.env = append(g.env, k+"="+*v)
	}
	sort.Strings(g.env)
	for _, c := range okCodes {
		if c == nil {
			return g, fmt.Errorf("ok_codes contains null")
		}
		n, acc := big.NewFloat(*c).Int64()
		if acc != big.Exact {
			return g, fmt.Errorf("ok_codes: %s is not a whole number", big.NewFloat(*c).String())
		}
		g.okCodes[int(n)] = true
	}
	return g, nil
}

// Run runs the program unless a guard says there is nothing to do.
func (Command) Run(ctx context.Context, env *modules.Env, args commandArgs, apply bool) (*modules.Result, error) {
	var argv []string
	// The line shown is rebuilt from argv, quoted anew: a cmd that is secret as a whole
	// would not be recognised in it, so it is not shown at all.
	hide := false
	if args.Argv != nil {
		for i, e := range args.Argv {
			if e == nil {
				return nil, fmt.Errorf("argv[%d] is null", i)
			}
			argv = append(argv, *e)
		}
	} else {
		words, err := splitWords(deref(args.Cmd))
		if err != nil {
			return nil, fmt.Errorf("cmd: %w", err)
		}
		argv, hide = words, env.Sensitive("cmd")
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("the command is empty")
	}
	g, err := newGuardSpec(args.Chdir, args.Creates, args.Removes, args.Unless, args.Stdin, args.Env, args.OKCodes)
	if err != nil {
		return nil, err
	}
	shown := modules.Redacted
	if !hide {
		shown = commandLine(env.Redactor(), argv)
	}
	return runGuarded(ctx, env, g, apply, argv, "/bin/sh", shown)
}

// Run runs the command line with the shell unless a guard says there is nothing to do.
func (Shell) Run(ctx context.Context, env *modules.Env, args shellArgs, apply bool) (*modules.Result, error) {
	g, err := newGuardSpec(args.Chdir, args.Creates, args.Removes, args.Unless, args.Stdin, args.Env, args.OKCodes)
	if err != nil {
		return nil, err
	}
	argv := []string{args.Executable, "-c", args.Cmd}
	return runGuarded(ctx, env, g, apply, argv, args.Executable, commandLine(env.Redactor(), argv))
}

// runGuarded is the shared core of command and shell: guards first (they only read, so
// they run in check mode too), then the command itself only when applying. shown is the
// command line as messages show it.
func runGuarded(ctx context.Context, env *modules.Env, g guardSpec, apply bool, argv []string, shell, shown string) (*modules.Result, error) {
	var data commandResult
	skip := func(guard, why string) (*modules.Result, error) {
		data.SkippedBy = guard
		return &modules.Result{Status: modules.StatusOK, Data: data, Msg: why}, nil
	}
	inDir := func(p string) string {
		if g.dir != "" && !filepath.IsAbs(p) {
			return filepath.Join(g.dir, p)
		}
		return p
	}

	if p := g.creates; p != "" {
		exists, err := pathMatches(inDir(p))
		if err != nil {
			return nil, fmt.Errorf("creates: %w", err)
		}
		if exists {
			return skip("creates", fmt.Sprintf("not run: %s exists", p))
		}
	}
	if p := g.removes; p != "" {
		exists, err := pathMatches(inDir(p))
		if err != nil {
			return nil, fmt.Errorf("removes: %w", err)
		}
		if !exists {
			return skip("removes", fmt.Sprintf("not run: %s does not exist", p))
		}
	}
	if u := g.unless; u != "" {
		guard, err := host.Exec{Env: env}.Run(ctx, host.Cmd{Argv: []string{shell, "-c", u}, Dir: g.dir, Env: g.env, User: true})
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
	out, err := host.Exec{Env: env}.Run(ctx, host.Cmd{Argv: argv, Dir: g.dir, Env: g.env, Stdin: g.stdin, User: true})
	rc, stderr := out.RC, out.Stderr
	data.Stdout, data.Stderr = out.Stdout, stderr
	if rc >= 0 {
		data.RC = &rc
	}
	res := &modules.Result{Status: modules.StatusChanged, Data: data, Msg: "ran: " + shown}
	if err != nil {
		return res, &modules.Failure{Msg: err.Error(), Stderr: stderr}
	}
	if !g.okCodes[rc] {
		codes := make([]int, 0, len(g.okCodes))
		for c := range g.okCodes {
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
