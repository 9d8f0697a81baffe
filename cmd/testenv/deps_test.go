package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestBinariesLinkNoTesting holds every command of the repository to code that belongs in a
// binary: the testing package (and with it the test flags) is for tests only, so the lab's
// test helpers live in testenv/testlab, which only tests import.
func TestBinariesLinkNoTesting(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	for _, cmd := range []string{"runbook", "runbook-helper", "testenv"} {
		t.Run(cmd, func(t *testing.T) {
			c := exec.Command(goTool, "list", "-deps", "github.com/runbook/runbook/cmd/"+cmd)
			c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
			out, err := c.Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("%s list -deps: %v\n%s", goTool, err, stderr)
			}
			deps := strings.Fields(string(out))
			if !slices.Contains(deps, "github.com/runbook/runbook/cmd/"+cmd) {
				t.Fatalf("go list -deps did not list the command itself: %v", deps)
			}
			for _, p := range deps {
				if p == "testing" || strings.HasPrefix(p, "testing/") {
					t.Errorf("cmd/%s links %s", cmd, p)
				}
			}
		})
	}
}
