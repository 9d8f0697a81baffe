package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// PasswordFileEnv names a vault password file when no vault option does.
const PasswordFileEnv = "RUNBOOK_VAULT_PASSWORD_FILE"

// MaxPassword bounds a password read from a file, a script or a terminal.
const MaxPassword = 64 << 10

// ScriptTimeout bounds a password script.
const ScriptTimeout = 30 * time.Second

// Prompt reads a password for a vault id from the user; Sources uses it for `prompt`.
type Prompt func(id string) ([]byte, error)

// ParseID splits a --vault-id value: "label@source", or a bare source whose label is
// "default" (as Ansible reads it).
func ParseID(v string) (id, source string) {
	if i := strings.Index(v, "@"); i >= 0 {
		id, source = v[:i], v[i+1:]
		if id == "" {
			id = DefaultID
		}
		return id, source
	}
	return DefaultID, v
}

// Options are the vault options of a command line.
type Options struct {
	// PasswordFiles are --vault-password-file values (label "default").
	PasswordFiles []string
	// IDs are --vault-id values, "label@source", where source is a file, an executable or
	// "prompt".
	IDs []string
	// Ask is --ask-vault-pass: prompt for the default id's password.
	Ask bool
	// Environ is where RUNBOOK_VAULT_PASSWORD_FILE is looked up when no other option
	// gives a password; nil means the process environment.
	Environ []string
}

// Given reports whether any vault option or the environment names a password.
func (o Options) Given() bool {
	return len(o.PasswordFiles) > 0 || len(o.IDs) > 0 || o.Ask || o.envFile() != ""
}

func (o Options) envFile() string {
	env := o.Environ
	if env == nil {
		env = os.Environ()
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, PasswordFileEnv+"="); ok {
			return v
		}
	}
	return ""
}

// Keyring reads every password the options name, in order: --vault-id values, then
// --vault-password-file, then --ask-vault-pass; RUNBOOK_VAULT_PASSWORD_FILE only when
// none of them is given. An error names the source, never a password.
func (o Options) Keyring(ctx context.Context, prompt Prompt) (*Keyring, error) {
	k := NewKeyring()
	add := func(id, source string) error {
		pw, err := readSource(ctx, id, source, prompt)
		if err != nil {
			return err
		}
		k.Add(Secret{ID: id, Password: pw})
		return nil
	}
	for _, v := range o.IDs {
		id, source := ParseID(v)
		if source == "" {
			return nil, fmt.Errorf("--vault-id %q names no password source: use LABEL@FILE, LABEL@SCRIPT or LABEL@prompt", id)
		}
		if err := add(id, source); err != nil {
			return nil, err
		}
	}
	for _, f := range o.PasswordFiles {
		if err := add(DefaultID, f); err != nil {
			return nil, err
		}
	}
	if o.Ask {
		if err := add(DefaultID, "prompt"); err != nil {
			return nil, err
		}
	}
	if k.Len() == 0 {
		if f := o.envFile(); f != "" {
			if err := add(DefaultID, f); err != nil {
				return nil, fmt.Errorf("%s: %w", PasswordFileEnv, err)
			}
		}
	}
	return k, nil
}

func readSource(ctx context.Context, id, source string, prompt Prompt) ([]byte, error) {
	var pw []byte
	var err error
	if source == "prompt" {
		if prompt == nil {
			return nil, fmt.Errorf("vault id %q: no terminal to prompt for its password", id)
		}
		pw, err = prompt(id)
		if err != nil {
			return nil, fmt.Errorf("vault id %q: reading the password: %w", id, err)
		}
	} else {
		pw, err = readPasswordFile(ctx, id, source)
		if err != nil {
			return nil, err
		}
	}
	if len(pw) == 0 {
		return nil, fmt.Errorf("vault id %q: the password from %s is empty", id, describe(source))
	}
	return pw, nil
}

func describe(source string) string {
	if source == "prompt" {
		return "the prompt"
	}
	return source
}

// reClientScript is Ansible's name for a password script that takes --vault-id.
var reClientScript = regexp.MustCompile(`-client(\.[^.]*)?$`)

// readPasswordFile reads a password file: its first line, or, when it is executable, the
// first line of what it prints. The script runs without a shell and without arguments
// (a script named *-client[.ext] is given --vault-id ID, as Ansible does), with
// ScriptTimeout and MaxPassword bounding its run and its output.
func readPasswordFile(ctx context.Context, id, path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("vault password file: %w", unwrap(err))
	}
	if st.IsDir() {
		return nil, fmt.Errorf("vault password file %s is a directory", path)
	}
	if st.Mode().Perm()&0o111 != 0 {
		return runScript(ctx, id, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vault password file: %w", unwrap(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPassword+1))
	if err != nil {
		return nil, fmt.Errorf("vault password file %s: %w", path, unwrap(err))
	}
	return firstLine(data, path)
}

func firstLine(data []byte, from string) ([]byte, error) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	if len(line) > MaxPassword {
		return nil, fmt.Errorf("the vault password from %s is longer than %d KiB", from, MaxPassword>>10)
	}
	return bytes.TrimRight(line, "\r"), nil
}

func runScript(ctx context.Context, id, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ScriptTimeout)
	defer cancel()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	var args []string
	if reClientScript.MatchString(filepath.Base(path)) {
		args = []string{"--vault-id", id}
	}
	cmd := exec.CommandContext(ctx, abs, args...)
	// its own process group, killed whole: a script's children die with it and no
	// grandchild keeps the output pipe open
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	// its standard error is dropped: a script could print the password there
	cmd.Stderr = nil
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("vault password script %s: %w", path, unwrap(err))
	}
	data, rerr := io.ReadAll(io.LimitReader(out, MaxPassword+1))
	if len(data) > MaxPassword {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("vault password script %s did not finish within %s", path, ScriptTimeout)
	case len(data) > MaxPassword:
		return nil, fmt.Errorf("vault password script %s printed more than %d KiB", path, MaxPassword>>10)
	case werr != nil:
		return nil, fmt.Errorf("vault password script %s failed: %s", path, werr)
	case rerr != nil:
		return nil, fmt.Errorf("vault password script %s: %w", path, rerr)
	}
	return firstLine(data, path)
}

func unwrap(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}
