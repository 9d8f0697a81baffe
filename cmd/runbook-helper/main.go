// Command runbook-helper runs on managed hosts. The controller starts it over ssh (under
// sudo when the task needs root) and talks to it on stdin and stdout with the protocol of
// package engine/protocol; it runs every standard module's check and apply. It is built
// static (CGO_ENABLED=0), so one binary per architecture works on any Linux.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/runbook/runbook/engine/protocol"
	"github.com/runbook/runbook/modules"
	_ "github.com/runbook/runbook/modules/standard"
	"github.com/runbook/runbook/modules/txn"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "txn" {
		// Before any signal handling: the watchdog ends on the SIGTERM a confirmation
		// sends it.
		os.Exit(runTxn(os.Args[2:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program, callable from tests. Its output on stdout belongs to the
// protocol; everything for people goes to stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "txn" {
		return runTxn(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("runbook-helper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.Bool("version", false, "print the protocol version and build, then exit")
	verbose := fs.Bool("debug", false, "log module debug output to stderr")
	stateDir := fs.String("state-dir", "", "a directory the helper may keep state in")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: runbook-helper [--version] [--debug] [--state-dir DIR]\n\n"+
			"Serves runbook's helper protocol on stdin and stdout; the runbook controller starts it.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "runbook-helper: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "runbook-helper protocol %d build %s %s %s/%s%s\n",
			protocol.Version, protocol.Self(), runtime.Version(), runtime.GOOS, runtime.GOARCH, vcs())
		return 0
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	build := verifiedBuild()
	txnDir := ""
	var recovered []modules.Transaction
	if os.Geteuid() == 0 {
		// Transactions need a directory only root can write (modules/txn); a transaction a
		// crash or a reboot left pending is rolled back now, and said in the hello.
		txnDir = txn.DefaultDir
		var err error
		if recovered, err = (&txn.Manager{Dir: txnDir}).Recover(); err != nil {
			fmt.Fprintf(stderr, "runbook-helper: roll back pending transactions: %v\n", err)
		}
	}
	srv := &protocol.Server{
		Registry:  protocol.Modules,
		Build:     build,
		Verified:  verifiedHow(build),
		StateDir:  *stateDir,
		TxnDir:    txnDir,
		Recovered: recovered,
		Logger:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	if err := srv.Serve(ctx, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "runbook-helper: %v\n", err)
		return 1
	}
	return 0
}

// EnvVerified is set by the controller's start script to the sha256 it has just checked
// the helper's file against; the file's content-addressed name is that same hash.
const EnvVerified = "RUNBOOK_HELPER_VERIFIED"

// verifiedBuild returns the build hash the start script verified, so the helper need not
// hash its own executable again; "" (hash it) when the script did not say, or when what it
// said is not this executable's name. The variable is removed so commands do not inherit it.
func verifiedBuild() string {
	v := os.Getenv(EnvVerified)
	os.Unsetenv(EnvVerified)
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return checkVerified(v, exe)
}

// checkVerified returns v when it is a sha256 in hex and the executable's file name.
func checkVerified(v, exe string) string {
	if len(v) != 64 || strings.Trim(v, "0123456789abcdef") != "" || filepath.Base(exe) != v {
		return ""
	}
	return v
}

// EnvHow is set by the start script to how it verified the helper (Hello.Verified).
const EnvHow = "RUNBOOK_HELPER_HOW"

// verifiedHow returns what the start script said in EnvHow, only when it also named the
// verified build; the variable is removed so commands do not inherit it.
func verifiedHow(build string) string {
	v := os.Getenv(EnvHow)
	os.Unsetenv(EnvHow)
	if build == "" || len(v) > 200 || strings.ContainsAny(v, "\n\r\t") {
		return ""
	}
	return v
}

// vcs names the source revision the binary was built from, when the build recorded it.
func vcs() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	rev, dirty := "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return " rev " + rev + dirty
}
