package main

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/runbook/runbook/cmd/runbook/cli"
	"github.com/runbook/runbook/internal/pgtest"
)

// TestMain lets the test binary act as the runbook command inside scripts, so the scripts run
// the real CLI as a separate process with the script's environment.
func TestMain(m *testing.M) {
	testscript.Main(stopPostgres{m}, map[string]func(){
		"runbook": func() {
			os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ()))
		},
		// exits CODE runbook ARGS... runs runbook and succeeds only when it exits with CODE,
		// so scripts can assert exact exit codes.
		"exits": func() {
			if len(os.Args) < 3 || os.Args[2] != "runbook" {
				fmt.Fprintln(os.Stderr, "usage: exits CODE runbook ARGS...")
				os.Exit(2)
			}
			want, err := strconv.Atoi(os.Args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "exits: bad code:", err)
				os.Exit(2)
			}
			got := cli.Run(os.Args[3:], os.Stdin, os.Stdout, os.Stderr, os.Environ())
			if got != want {
				fmt.Fprintf(os.Stderr, "exits: runbook exited %d, want %d\n", got, want)
				os.Exit(1)
			}
			os.Exit(0)
		},
	})
}

// stopPostgres stops the test PostgreSQL server (pgtest), if a test started one, after the
// tests.
type stopPostgres struct{ m *testing.M }

func (s stopPostgres) Run() int {
	code := s.m.Run()
	pgtest.Stop()
	return code
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "")
			env.Setenv("REPO", repoRoot())
			// Runs keep their history in the script's own directory.
			env.Setenv("XDG_STATE_HOME", env.WorkDir+"/state")
			return nil
		},
		RequireExplicitExec: true,
	})
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return wd + "/../.."
}
