package system_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// debPackage is one small .deb the package lab test builds.
type debPackage struct {
	name, version, depends, preinst string
}

// buildRepo builds the packages with dpkg-deb and indexes them with dpkg-scanpackages into
// a flat repository (Packages beside the .debs), returned as a tar archive.
func buildRepo(t *testing.T, pkgs []debPackage) []byte {
	t.Helper()
	for _, tool := range []string{"dpkg-deb", "dpkg-scanpackages"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed to build the test's packages (dpkg, dpkg-dev)", tool)
			}
			t.Skipf("%s is needed to build the test's packages (dpkg, dpkg-dev)", tool)
		}
	}
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		src := filepath.Join(dir, p.name+"_"+p.version)
		if err := os.MkdirAll(filepath.Join(src, "DEBIAN"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(src, "usr/share/doc", p.name), 0o755); err != nil {
			t.Fatal(err)
		}
		control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: runbook lab <lab@example.invalid>\nSection: misc\nPriority: optional\nDescription: runbook lab package %s\n", p.name, p.version, p.name)
		if p.depends != "" {
			control += "Depends: " + p.depends + "\n"
		}
		write := func(rel, content string, mode os.FileMode) {
			if err := os.WriteFile(filepath.Join(src, rel), []byte(content), mode); err != nil {
				t.Fatal(err)
			}
		}
		write("DEBIAN/control", control, 0o644)
		write("usr/share/doc/"+p.name+"/VERSION", p.version+"\n", 0o644)
		if p.preinst != "" {
			write("DEBIAN/preinst", "#!/bin/sh\n"+p.preinst+"\n", 0o755)
		}
		out := filepath.Join(repo, p.name+"_"+p.version+"_all.deb")
		if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", src, out).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb: %v\n%s", err, b)
		}
	}
	cmd := exec.Command("dpkg-scanpackages", "--multiversion", ".", "/dev/null")
	cmd.Dir = repo
	idx, err := cmd.Output()
	if err != nil {
		t.Fatalf("dpkg-scanpackages: %v", err)
	}
	if err := os.WriteFile(filepath.Join(repo, "Packages"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	ents, _ := os.ReadDir(repo)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(repo, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.Name(), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	tw.Close()
	return buf.Bytes()
}

// putRepo replaces the lab host's /srv/rbrepo with the archive's files.
func (h *labHost) putRepo(archive []byte) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, err := h.lab.Command(ctx, "lab01", "sh", "-c", "rm -rf /srv/rbrepo && mkdir -p /srv/rbrepo && tar -x -C /srv/rbrepo")
	if err != nil {
		h.t.Fatal(err)
	}
	cmd.Stdin = bytes.NewReader(archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("copy the repository: %v\n%s", err, out)
	}
}

// TestPackageLab drives apt on a systemd lab host (Debian bookworm) against a local file
// repository of packages the test builds: present (a dependency in the diff), latest (an
// upgrade once a new version is published), absent (the dependent removed with its
// library), update_cache (a refresh alone is no change), and another apt run holding the
// dpkg lock, waited out, then held past lock_timeout.
func TestPackageLab(t *testing.T) {
	v1 := []debPackage{
		{name: "rb-lib", version: "1.0-1"},
		{name: "rb-app", version: "1.0-1", depends: "rb-lib (>= 1.0)"},
		{name: "rb-slow", version: "1.0-1", preinst: `touch /run/rb-slow.started; sleep "$(cat /run/rb-slow.sleep 2>/dev/null || echo 5)"`},
	}
	repoV1 := buildRepo(t, v1)
	repoV2 := buildRepo(t, append(v1, debPackage{name: "rb-app", version: "2.0-1", depends: "rb-lib (>= 1.0)"}))

	h := startLab(t)
	// The lab cannot reach a mirror: the test's repository is the host's only source.
	h.sh("mkdir -p /etc/apt/rbtest-off && for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do [ -e \"$f\" ] && mv \"$f\" /etc/apt/rbtest-off/ || true; done")
	h.putRepo(repoV1)
	h.sh("echo 'deb [trusted=yes] file:/srv/rbrepo ./' > /etc/apt/sources.list.d/rbtest.list && apt-get -q update")

	snap := func() string {
		return h.shOK("dpkg-query -W -f '${Package} ${Status} ${Version}\\n' 'rb-*' | sort")
	}

	t.Run("present", func(t *testing.T) {
		res := h.r.Timeline("lab01", "package", []string{`name=["rb-app"]`}, snap)
		t.Logf("check:\n%s", res[0].Out)
		for _, want := range []string{"would install rb-app 1.0-1, rb-lib 1.0-1", "+rb-app 1.0-1", "+rb-lib 1.0-1"} {
			if !strings.Contains(res[0].Out, want) {
				t.Errorf("check: no %q in\n%s", want, res[0].Out)
			}
		}
		if !strings.Contains(res[1].Out, "installed rb-app 1.0-1, rb-lib 1.0-1") {
			t.Errorf("apply:\n%s", res[1].Out)
		}
		if got := h.sh("cat /usr/share/doc/rb-app/VERSION; apt-mark showauto"); got != "1.0-1\nrb-lib\n" {
			t.Errorf("on the host: %q", got)
		}
	})

	t.Run("update_cache alone is no change", func(t *testing.T) {
		h.putRepo(repoV2)
		code, res, out := h.module("package", `name="rb-app"`, "update_cache=true")
		if code != 0 || res.Status != "ok" || res.Data["cache_updated"] != true || !strings.Contains(res.Msg, "package lists refreshed") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		code, res, out = h.module("package", `name="rb-app"`, "update_cache=true", "cache_valid_time=1h")
		if code != 0 || res.Data["cache_updated"] != false || !strings.Contains(res.Msg, "within cache_valid_time") {
			t.Fatalf("fresh lists: exit %d\n%s", code, out)
		}
	})

	t.Run("latest", func(t *testing.T) {
		res := h.r.Timeline("lab01", "package", []string{`name=["rb-app", "rb-lib"]`, "state=latest"}, snap)
		if !strings.Contains(res[0].Out, "would upgrade rb-app 1.0-1 → 2.0-1") || !strings.Contains(res[0].Out, "-rb-app 1.0-1") || !strings.Contains(res[0].Out, "+rb-app 2.0-1") {
			t.Errorf("check:\n%s", res[0].Out)
		}
		code, r, out := h.module("package", `name=["rb-app", "rb-lib"]`)
		if code != 0 || fmt.Sprint(r.Data["packages"]) != "map[rb-app:2.0-1 rb-lib:1.0-1]" {
			t.Errorf("after: exit %d\n%s", code, out)
		}
	})

	t.Run("a pinned version downgrades", func(t *testing.T) {
		res := h.r.Timeline("lab01", "package", []string{`name=["rb-app=1.0-1"]`}, snap)
		if !strings.Contains(res[1].Out, "upgraded rb-app 2.0-1 → 1.0-1") {
			t.Errorf("apply:\n%s", res[1].Out)
		}
	})

	t.Run("absent", func(t *testing.T) {
		res := h.r.Timeline("lab01", "package", []string{`name="rb-lib"`, "state=absent"}, snap)
		if !strings.Contains(res[0].Out, "would remove rb-app 1.0-1, rb-lib 1.0-1") {
			t.Errorf("check:\n%s", res[0].Out)
		}
		if got := snap(); strings.Contains(got, "installed") {
			t.Errorf("still installed:\n%s", got)
		}
	})

	t.Run("unknown package and hostile names", func(t *testing.T) {
		res := h.r.Module("lab01", "package", `name="rb-nosuch"`)
		if res.Code != 2 || !strings.Contains(res.Out, "Unable to locate package rb-nosuch") {
			t.Errorf("unknown: exit %d\n%s", res.Code, res.Out)
		}
		res = h.r.Module("lab01", "package", `name=["rb-lib", "-oDebug::pkgProblemResolver=1"]`)
		if res.Code != 1 || !strings.Contains(res.Out, "not a package name") || strings.Contains(res.Out, "RECAP") {
			t.Errorf("an option as a name: exit %d\n%s", res.Code, res.Out)
		}
	})

	// holdLock runs another apt-get (a reinstall of rb-slow, whose preinst sleeps secs
	// seconds) in the background and returns once it holds the dpkg lock.
	holdLock := func(t *testing.T, secs int) (wait func()) {
		h.sh(fmt.Sprintf("rm -f /run/rb-slow.started; echo %d > /run/rb-slow.sleep", secs))
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+60)*time.Second)
		cmd, err := h.lab.Command(ctx, "lab01", "sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall rb-slow")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		done := false
		wait = func() {
			if done {
				return
			}
			done = true
			if err := cmd.Wait(); err != nil {
				t.Errorf("the lock holder: %v\n%s", err, out.String())
			}
			cancel()
		}
		t.Cleanup(wait)
		for i := 0; ; i++ {
			if strings.Contains(h.shOK("ls /run/rb-slow.started"), "/run/rb-slow.started\n") {
				return wait
			}
			if i > 100 {
				t.Fatalf("the lock holder did not start:\n%s", out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	h.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -q rb-slow")

	t.Run("a lock held for a while is waited out", func(t *testing.T) {
		wait := holdLock(t, 6)
		start := time.Now()
		code, res, out := h.module("package", `name="rb-lib"`, "lock_timeout=60s")
		took := time.Since(start)
		wait()
		if code != 0 || res.Status != "changed" || !strings.Contains(res.Msg, "installed rb-lib 1.0-1") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if took < 3*time.Second {
			t.Errorf("the module took %s: it did not wait for the lock", took)
		}
		t.Logf("waited for the lock: the module took %s", took.Round(100*time.Millisecond))
	})

	t.Run("a lock held past lock_timeout fails", func(t *testing.T) {
		wait := holdLock(t, 20)
		start := time.Now()
		res := h.r.Module("lab01", "package", `name="rb-lib"`, "state=absent", "lock_timeout=3s")
		took := time.Since(start)
		wait()
		t.Logf("%s", res.Out)
		if res.Code != 2 || !strings.Contains(res.Out, "longer than lock_timeout (3s)") || !strings.Contains(res.Out, "Could not get lock") {
			t.Fatalf("exit %d\n%s", res.Code, res.Out)
		}
		if took > 15*time.Second {
			t.Errorf("the module took %s with lock_timeout 3s", took)
		}
		t.Logf("gave up on the lock after %s", took.Round(100*time.Millisecond))
		if got := snap(); !strings.Contains(got, "rb-lib install ok installed") {
			t.Errorf("rb-lib removed though the lock was never had:\n%s", got)
		}
	})
}
