package cli

import (
	"bufio"
	"fmt"
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
			ConnectTries: f.connectRetries + 1, SSHConfig: f.sshConfig},
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
	var v view.View
	switch a.output {
	case "json":
		v = &view.JSON{W: a.stdout}
	case "junit":
		v = &view.JUnit{W: a.stdout}
	default:
		h := &view.Human{W: a.stdout, Color: a.color(a.stdout), Quiet: f.quiet, Verbose: f.verbose, Diff: f.diff}
		if out, ok := a.stdout.(*os.File); ok && isatty.IsTerminal(out.Fd()) && a.getenv("TERM") != "dumb" {
			h.Live = true
			seen := map[string]bool{}
			for _, p := range pl.Plays {
				for _, host := range p.Hosts {
					seen[host.Name] = true
				}
			}
			h.Total = len(seen)
		}
		v = h
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
			if h, ok := v.(*view.Human); ok {
				h.Hold(ask)
			} else {
				ask()
			}
			return b, err
		}
	}
	// Warnings about the controller's own files (a known_hosts line that cannot be read),
	// once per run, above the live line.
	conn.Dialer.Warn = func(msg string) {
		say := func() { fmt.Fprintf(a.stderr, "warning: %s\n", termsafe.Text(msg)) }
		if h, ok := v.(*view.Human); ok {
			h.Hold(say)
		} else {
			say()
		}
	}
	ctx, stop := notifyStop(cmd.Context())
	defer stop()
	obs, comp := a.startCompliance(cmd, rb, f, v)
	eng := &run.Engine{Runbook: rb, Connector: conn, Observer: obs,
		Options: run.Options{Forks: f.forks, Check: f.check, HostTimeout: f.hostTimeout, Strategy: f.strategy, ForceHandlers: f.forceHandlers}}
	recap := eng.Run(ctx, pl)
	if err := conn.Stamps.Save(); err != nil {
		fmt.Fprintf(a.stderr, "warning: %s (the next run hashes each helper again)\n", termsafe.Text(err.Error()))
	}
	err := v.Finish(recap)
	comp.finish(recap)
	if h, ok := v.(*view.Human); ok && h.Verbose {
		pushed, reused := conn.Stats.Counts()
		hashed, stamped := conn.Stats.Verifications()
		// A host runs a helper per identity its tasks run as (become): say so when a host ran
		// more than one.
		started := ""
		if hosts := conn.Stats.Hosts(); hosts != pushed+reused {
			started = fmt.Sprintf("%d helpers; ", pushed+reused)
		}
		fmt.Fprintf(a.stdout, "helper: started on %d hosts (%spushed to %d); verified by hash on %d, unchanged since a hash on %d\n",
			conn.Stats.Hosts(), started, pushed, hashed, stamped)
	}
	if err != nil {
		return err
	}
	if code := recap.ExitCode(); code != 0 {
		return fail(code)
	}
	return nil
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
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// passphrasePrompt asks for the passphrase of the key at path. The path can come from a
// dynamic inventory (ansible_ssh_private_key_file): it is shown escaped, on the prompt's
// line, so that it cannot repaint the terminal or put words of its own before the prompt.
func passphrasePrompt(path string) string {
	return fmt.Sprintf("Enter passphrase for key '%s': ", termsafe.Line(path))
}
