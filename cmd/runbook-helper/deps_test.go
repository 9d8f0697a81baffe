package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// goTool returns the go command that runs this test.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := runtime.GOROOT(); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	t.Fatal("no go command in $PATH or $GOROOT/bin: the dependency check needs it")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// linkedPackages lists the packages the helper links when built as the Makefile builds it
// (CGO_ENABLED=0, GOOS=linux) for arch.
func linkedPackages(t *testing.T, arch string) []string {
	t.Helper()
	cmd := exec.Command(goTool(t), "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	return strings.Fields(string(out))
}

// TestLinksNoControllerCode holds the helper to the code that runs on a host: the HCL
// language (parsing runbooks, decoding module blocks, rendering templates), the engine's
// controller side and the testing package stay out of what is pushed to every host.
func TestLinksNoControllerCode(t *testing.T) {
	forbidden := []struct {
		prefix, why string
	}{
		{"github.com/hashicorp/hcl", "the HCL language belongs to the controller"},
		{"github.com/runbook/runbook/engine/config", "runbooks are decoded on the controller"},
		{"github.com/runbook/runbook/engine/controller", "the controller halves of modules run on the controller"},
		{"github.com/runbook/runbook/engine/run", "runs are driven by the controller"},
		{"testing", "test support must not reach a binary"},
	}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			pkgs := linkedPackages(t, arch)
			if len(pkgs) < 10 {
				t.Fatalf("go list -deps listed only %v", pkgs)
			}
			for _, p := range pkgs {
				for _, f := range forbidden {
					if p == f.prefix || strings.HasPrefix(p, f.prefix+"/") {
						t.Errorf("the helper links %s: %s", p, f.why)
					}
				}
			}
		})
	}
}
