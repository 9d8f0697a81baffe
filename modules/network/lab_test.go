package network_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/helperbin"
	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
)

var (
	helperOnce sync.Once
	helperDir  string
	helperErr  error
)

// labRunner prepares CLI runs against lab. The helper the hosts run must link the network
// modules: while modules/standard does not import this package, the helper is built with
// an -overlay that adds the import, leaving the tree as it is.
func labRunner(t *testing.T, lab *testenv.Lab) *labtest.Runner {
	t.Helper()
	r := labtest.New(t, lab)
	std := filepath.Join(labtest.Root(), "modules", "standard", "standard.go")
	src, err := os.ReadFile(std)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(src), `"github.com/runbook/runbook/modules/network"`) {
		return r
	}
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runbook-network-helper-")
		if err != nil {
			helperErr = err
			return
		}
		patched := strings.Replace(string(src), "import (", "import (\n\t_ \"github.com/runbook/runbook/modules/network\"", 1)
		if err := os.WriteFile(filepath.Join(dir, "standard.go"), []byte(patched), 0o644); err != nil {
			helperErr = err
			return
		}
		overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{std: filepath.Join(dir, "standard.go")}})
		if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o644); err != nil {
			helperErr = err
			return
		}
		cmd := exec.Command("go", "build", "-overlay", filepath.Join(dir, "overlay.json"), "-trimpath", "-ldflags", "-s -w",
			"-o", filepath.Join(dir, helperbin.Name("amd64")), "./cmd/runbook-helper")
		cmd.Dir = labtest.Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = fmt.Errorf("%v\n%s", err, out)
			return
		}
		helperDir = dir
	})
	if helperErr != nil {
		t.Fatalf("build the helper with the network modules: %v", helperErr)
	}
	t.Logf("modules/standard does not import modules/network yet: the lab helper is built with it through -overlay")
	t.Setenv(helperbin.EnvDir, helperDir)
	return r
}

// labHost is the one host of a lab with helpers to run commands and modules on it.
type labHost struct {
	t   *testing.T
	lab *testenv.Lab
	r   *labtest.Runner
}

func (h *labHost) sh(cmd string) string {
	h.t.Helper()
	out, err := h.try(cmd)
	if err != nil {
		h.t.Fatalf("lab01: %s: %v\n%s", cmd, err, out)
	}
	return out
}

func (h *labHost) try(cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := h.lab.Exec(ctx, "lab01", "sh", "-c", cmd)
	return string(out), err
}

// result runs a module with JSON output and returns its exit code and result line.
func (h *labHost) result(module string, args ...string) (int, map[string]any) {
	h.t.Helper()
	res := h.r.Module("lab01", module, append(args, "-o", "json")...)
	for line := range strings.SplitSeq(res.Out, "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil && v["type"] == "result" {
			return res.Code, v
		}
	}
	h.t.Fatalf("no result line in:\n%s", res.Out)
	return 0, nil
}

func data(v map[string]any) map[string]any {
	d, _ := v["data"].(map[string]any)
	return d
}

func list(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// rejected runs a module that must fail validation (exit 1) without touching the host.
func (h *labHost) rejected(snap func() string, module string, args ...string) {
	h.t.Helper()
	before := snap()
	res := h.r.Module("lab01", module, args...)
	if res.Code != 1 {
		h.t.Errorf("%s %v: exit %d, want 1\n%s", module, args, res.Code, res.Out)
	}
	if after := snap(); after != before {
		h.t.Fatalf("a rejected task changed the host:\n%s\n->\n%s", before, after)
	}
}
