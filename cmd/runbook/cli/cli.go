// Package cli is the runbook command line. Run is called by main and, in-process, by the
// tests, so everything it does goes through the streams and environment it is given.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/internal/termsafe"
	"github.com/runbook/runbook/inventory/vault"
	_ "github.com/runbook/runbook/modules/standard" // every module's schema
)

// ExitInvalid is the exit code of a command that ran nothing (invalid runbook, inventory or
// flags). Exit codes are defined once, in package run (run.ExitOK and the others); a run's
// comes from its recap (run.Recap.ExitCode).
const ExitInvalid = run.ExitInvalid

// app is one invocation's state: its streams, environment and global flags.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	env    []string

	noColor bool
	output  string
	code    int

	// vault is the vault keyring, read once per invocation (vaultKeyring)
	vault struct {
		read bool
		keys *vault.Keyring
		diag *hcl.Diagnostic
	}
}

// Run runs the runbook command line with args (without the program name) and returns the
// process exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer, env []string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, env: env}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		var ce codeError
		if errors.As(err, &ce) {
			return ce.code
		}
		fmt.Fprintf(stderr, "Error: %s\n\nRun 'runbook --help' for usage.\n", termsafe.Text(err.Error()))
		return ExitInvalid
	}
	return a.code
}

// codeError ends a command with an exit code after its output is written.
type codeError struct{ code int }

func (e codeError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "runbook",
		Short: "Run HCL runbooks against fleets of Linux hosts over SSH, agentlessly",
		Long: `runbook runs HCL runbooks against many Linux hosts at once over SSH. Nothing is installed on
the hosts by hand: runbook pushes a small static helper and drives it. Every module can check
(read-only, with a diff) and apply.

Exit codes: 0 ok (in check mode: in sync), 1 invalid runbook, inventory or flags (nothing was
run), 2 a task failed, 3 a host was unreachable, 4 drift found in check mode.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&a.noColor, "no-color", false, "never colour the output (NO_COLOR in the environment does the same)")
	root.AddCommand(
		a.validateCmd(),
		a.fmtCmd(),
		a.inventoryCmd(),
		a.modulesCmd(),
		a.versionCmd(),
		a.execCmd("exec"),
		a.execCmd("check"),
		a.runCmd(),
		a.reportCmd(),
	)
	return root
}

// color reports whether output to w should be coloured.
func (a *app) color(w io.Writer) bool {
	if a.noColor || a.getenv("NO_COLOR") != "" || a.getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

func (a *app) getenv(name string) string {
	for _, kv := range a.env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// outputFlag adds --output with the formats a command supports.
func (a *app) outputFlag(cmd *cobra.Command, formats ...string) {
	cmd.Flags().StringVarP(&a.output, "output", "o", formats[0], "output format: "+strings.Join(formats, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return formats, cobra.ShellCompDirectiveNoFileComp
	})
	cmd.PreRunE = chainPreRun(cmd.PreRunE, func(*cobra.Command, []string) error {
		for _, f := range formats {
			if a.output == f {
				return nil
			}
		}
		return fmt.Errorf("--output must be one of %s, not %q", strings.Join(formats, ", "), a.output)
	})
}

func chainPreRun(first, second func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		if first != nil {
			if err := first(c, args); err != nil {
				return err
			}
		}
		return second(c, args)
	}
}

// report writes diagnostics: as JSON lines on stdout with --output json, else as text on
// stderr. It returns true when they hold an error.
func (a *app) report(files map[string]*hcl.File, diags hcl.Diagnostics) bool {
	if len(diags) == 0 {
		return false
	}
	if a.output == "json" {
		_ = diag.JSON(a.stdout, diags)
	} else {
		p := &diag.Printer{Files: files, Color: a.color(a.stderr)}
		p.Text(a.stderr, diags)
	}
	return diags.HasErrors()
}

// fail ends the command with code after diagnostics were reported.
func fail(code int) error { return codeError{code} }
