package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/testenv"
)

// TestMain lets the test binary stand in for the testenv binary when `up`
// re-executes itself as the forwarder daemon.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "forward" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		dir       string
		pos, rest []string
	}{
		{[]string{"--dir", "d", "lab01", "--", "ls", "-l"}, "d", []string{"lab01"}, []string{"ls", "-l"}},
		{[]string{"lab01", "--dir", "d", "--", "sh", "-c", "exit 3"}, "d", []string{"lab01"}, []string{"sh", "-c", "exit 3"}},
		{[]string{"--dir=d", "lab01", "slow"}, "d", []string{"lab01", "slow"}, nil},
		{[]string{"lab01", "stop", "--dir", "d"}, "d", []string{"lab01", "stop"}, nil},
		{[]string{"--dir", "d"}, "d", nil, nil},
		{[]string{"lab01", "--", "--dir", "x"}, "lab", []string{"lab01"}, []string{"--dir", "x"}},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		dir := fs.String("dir", "lab", "")
		pos, rest, err := parseArgs(fs, tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if *dir != tc.dir || !slices.Equal(pos, tc.pos) || !slices.Equal(rest, tc.rest) {
			t.Errorf("%q: dir %q pos %q rest %q, want %q %q %q", tc.args, *dir, pos, rest, tc.dir, tc.pos, tc.rest)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"exec", "--dir", "d", "lab01"},
		{"break", "--dir", "d", "lab01"},
		{"up", "--hosts", "x"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (stderr %q)", args, code, errb.String())
		}
	}
}

func cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	if errb.Len() > 0 {
		t.Logf("testenv %s: %s", strings.Join(args, " "), strings.TrimSpace(errb.String()))
	}
	return out.String(), code
}

// TestCLI drives the lab the way a person or the Makefile does; the
// forwarders must outlive `up`, so they run in the daemon.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("lab tests do not run with -short")
	}
	if err := testenv.CheckTier(testenv.TierNS); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := filepath.Join(t.TempDir(), "lab")
	out, code := cli(t, "up", "--tier", "ns", "--hosts", "2", "--dir", dir)
	if code != 0 {
		t.Fatalf("up: exit %d", code)
	}
	lab, err := testenv.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = lab.Down(ctx)
	})
	if !strings.Contains(out, "inventory: "+filepath.Join(dir, "inventory.hcl")) || !regexp.MustCompile(`in \d+\.\d+s`).MatchString(out) {
		t.Errorf("up output lacks the inventory path or the time taken:\n%s", out)
	}
	procs := lab.Processes()

	if out, code := cli(t, "status", "--dir", dir); code != 0 || len(regexp.MustCompile(`true\s+true`).FindAllString(out, -1)) != 2 {
		t.Errorf("status: exit %d:\n%s", code, out)
	}
	if out, code := cli(t, "exec", "--dir", dir, "lab02", "--", "hostname"); code != 0 || out != "lab02\n" {
		t.Errorf("exec hostname: exit %d, output %q", code, out)
	}
	if _, code := cli(t, "exec", "--dir", dir, "lab01", "--", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exec exit code = %d, want 7", code)
	}

	ssh := func(h testenv.Host) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, "ssh", "-F", filepath.Join(dir, "ssh_config"),
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=3", h.Name, "true").Run()
	}
	if _, err := exec.LookPath("ssh"); err == nil {
		h := lab.Hosts[0]
		if err := ssh(h); err != nil {
			t.Fatalf("ssh via ssh_config: %v", err)
		}
		if _, code := cli(t, "break", "--dir", dir, h.Name, "stop"); code != 0 {
			t.Fatal("break failed")
		}
		if err := ssh(h); err == nil {
			t.Error("ssh works after break stop")
		}
		if out, _ := cli(t, "status", "--dir", dir); !strings.Contains(out, "stop") {
			t.Errorf("status does not show the break:\n%s", out)
		}
		if _, code := cli(t, "heal", "--dir", dir, h.Name); code != 0 {
			t.Fatal("heal failed")
		}
		if err := ssh(h); err != nil {
			t.Errorf("ssh after heal: %v", err)
		}
	}

	if _, code := cli(t, "down", "--dir", dir); code != 0 {
		t.Fatalf("down: exit %d", code)
	}
	if left := lab.Leftovers(procs); len(left) > 0 {
		t.Errorf("down left:\n%s", strings.Join(left, "\n"))
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir still exists after down (%v)", err)
	}
	// Down of a dir without a lab is fine (idempotent cleanup).
	if _, code := cli(t, "down", "--dir", dir); code != 0 {
		t.Errorf("second down: exit %d", code)
	}
}
