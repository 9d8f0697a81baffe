package generic

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/runbook/runbook/modules"
)

// process is one program to run on the host.
type process struct {
	argv  []string
	dir   string
	env   map[string]string
	stdin string
}

// runProcess runs p until it exits or ctx ends and returns its exit code and its output,
// each stream redacted and capped at env.Limit() bytes with a note saying how much was
// dropped (modules.Capture). err is set only when the program could not run or was stopped;
// a non-zero exit is rc.
func runProcess(ctx context.Context, env *modules.Env, p process) (rc int, stdout, stderr string, err error) {
	if len(p.argv) == 0 || p.argv[0] == "" {
		return -1, "", "", errors.New("empty command")
	}
	cmd := exec.CommandContext(ctx, p.argv[0], p.argv[1:]...)
	cmd.Dir = p.dir
	if len(p.env) > 0 {
		cmd.Env = os.Environ()
		for k, v := range p.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	if p.stdin != "" {
		cmd.Stdin = strings.NewReader(p.stdin)
	}
	out, errb := env.NewCapture(), env.NewCapture()
	cmd.Stdout, cmd.Stderr = out, errb
	ownProcessGroup(cmd)
	// A daemon started by the command may inherit its output pipes; do not wait for it
	// longer than this after the command itself exits or is killed.
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()
	stdout, stderr = out.String(), errb.String()
	var exitErr *exec.ExitError
	switch {
	case runErr == nil:
		return 0, stdout, stderr, nil
	case ctx.Err() != nil:
		// The cause says why (a timeout, the controller gone) better than "canceled".
		return -1, stdout, stderr, fmt.Errorf("%s: stopped: %w", p.argv[0], context.Cause(ctx))
	case errors.As(runErr, &exitErr):
		if code := exitErr.ExitCode(); code >= 0 {
			return code, stdout, stderr, nil
		}
		return -1, stdout, stderr, fmt.Errorf("%s: %w", p.argv[0], runErr)
	case errors.Is(runErr, exec.ErrWaitDelay):
		return cmd.ProcessState.ExitCode(), stdout, stderr, nil
	}
	return -1, stdout, stderr, fmt.Errorf("run %s: %w", p.argv[0], runErr)
}

// splitWords splits a command line into words as a POSIX shell would, with quotes and
// backslashes, but expands nothing: no variables, globs or substitutions.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' { // backslash-newline joins lines
					cur.WriteByte(s[i])
				}
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
