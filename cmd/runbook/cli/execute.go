package cli

import (
	"cmp"
	"time"

	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/engine/remote"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/engine/transport"
	"github.com/runbook/runbook/engine/view"
	"github.com/runbook/runbook/internal/termsafe"
)

// execute runs a plan against the hosts and shows the results.
func (a *app) execute(cmd *cobra.Command, rb *config.Runbook, pl *plan.Plan, f *runFlags) error {
	conn := &remote.Connector{
		SSHConfig: f.sshConfig,
		Dialer: &transport.Dialer{Agent: true, Keepalive: f.keepalive, ConnectTimeout: f.connectTimeout,
			ConnectTries: f.connectRetries + 1, MaxStartups: f.maxStartups, SSHConfig: f.sshConfig},
		NoCompress: a.getenv("RUNBOOK_HELPER_COMPRESS") == "0",
		MaxPushes:  cmp.Or(f.maxPushes, -1),
	}
	if f.verifyHelper == "stamp" { // checkFlags allowed only stamp and always
		conn.Stamps = &remote.Stamps{Path: remote.DefaultStampsPath(a.getenv)}
	}
	if f.askBecomePass {
		pw, err := a.readPassword("BECOME password: ")
		if err != nil {
			a.report(nil, hcl.Diagnostics{diag.Errorf("Cannot read the become password", "%s", err)})
			return fail(ExitInvalid)
		}
		conn.BecomePassword = pw
	}
	opts := view.Options{W: a.stdout, Color: a.color(a.stdout), Quiet: f.quiet, Verbose: f.verbose, Diff: f.diff, Check: f.check}
	if out, ok := a.stdout.(*os.File); ok && isatty.IsTerminal(out.Fd()) && a.getenv("TERM") != "dumb" {
		opts.Live = true
		seen := map[string]bool{}
		for _, p := range pl.Plays {
			for _, host := range p.Hosts {
				seen[host.Name] = true
			}
		}
		opts.Total = len(seen)
	}
	v, err := view.New(view.Kind(a.output), opts)
	if err != nil {
		return err
	}
	if tty, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(tty.Fd())) {
		// An encrypted key that the agent does not hold: ask once, on the terminal, with the
		// live line held so that its redraws do not wipe the prompt.
		conn.Dialer.Passphrase = func(path string) (b []byte, err error) {
			ask := func() {
				fmt.Fprint(a.stderr, passphrasePrompt(path))
				b, err = term.ReadPassword(int(tty.Fd()))
				fmt.Fprintln(a.stderr)
			}
			v.Hold(ask)
			return b, err
		}
	}
	// Warnings about the controller's own files (a known_hosts line that cannot be read),
	// once per run, above the live line.
	conn.Dialer.Warn = func(msg string) {
		say := func() { fmt.Fprintf(a.stderr, "warning: %s\n", termsafe.Text(msg)) }
		v.Hold(say)
	}
	ctx, stop := notifyStop(cmd.Context())
	defer stop()
	obs, comp := a.startCompliance(cmd, rb, f, v)
	eng := &run.Engine{Runbook: rb, Connector: conn, Observer: obs,
		Options: run.Options{Forks: f.forks, Check: f.check, HostTimeout: f.hostTimeout, Strategy: f.strategy, ForceHandlers: f.forceHandlers,
			ConfirmTimeout: confirmTimeout(f.confirmTimeout), NoPipelining: f.noPipelining}}
	recap := eng.Run(ctx, pl)
	if err := conn.Stamps.Save(); err != nil {
		fmt.Fprintf(a.stderr, "warning: %s (the next run hashes each helper again)\n", termsafe.Text(err.Error()))
	}
	err = v.Finish(recap)
	v.Footer(view.Footer{History: comp.finish(recap), Helper: helperStats(&conn.Stats)})
	if err != nil {
		return err
	}
	if code := recap.ExitCode(); code != 0 {
		return fail(code)
	}
	return nil
}

// helperStats is what the connector counted of the helpers it started, for the view.
func helperStats(s *remote.Stats) view.HelperStats {
	pushed, reused := s.Counts()
	hashed, stamped := s.Verifications()
	return view.HelperStats{Hosts: s.Hosts(), Pushed: pushed, Reused: reused, Hashed: hashed, Stamped: stamped, Sent: s.SentBytes()}
}

// readPassword asks on the terminal without echo; without a terminal it reads one line from
// standard input, so scripts can pipe it. It never appears in argv.
func (a *app) readPassword(prompt string) (string, error) {
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		return string(b), err
	}
	if a.stdin == nil {
		return "", fmt.Errorf("no terminal and no standard input to read it from")
	}
	// byte by byte: a buffered read would take the lines of the prompts after this one
	// (--ask-vault-pass, then the become password)
	var line []byte
	b := make([]byte, 1)
	for len(line) <= maxPasswordLine {
		n, err := a.stdin.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return strings.TrimRight(string(line), "\r"), nil
			}
			line = append(line, b[0])
			continue
		}
		if err != nil {
			if len(line) > 0 && errors.Is(err, io.EOF) {
				return strings.TrimRight(string(line), "\r"), nil
			}
			return "", fmt.Errorf("read standard input: %w", err)
		}
	}
	return "", fmt.Errorf("read standard input: the line is longer than %d KiB", maxPasswordLine>>10)
}

// maxPasswordLine bounds a password read from standard input.
const maxPasswordLine = 64 << 10

// passphrasePrompt asks for the passphrase of the key at path. The path can come from a
// dynamic inventory (ansible_ssh_private_key_file): it is shown escaped, on the prompt's
// line, so that it cannot repaint the terminal or put words of its own before the prompt.
func passphrasePrompt(path string) string {
	return fmt.Sprintf("Enter passphrase for key '%s': ", termsafe.Line(path))
}

// confirmTimeout is the --confirm-timeout flag as run.Options has it: 0 there means the
// default, so the flag's 0 (no transaction) becomes negative.
func confirmTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
