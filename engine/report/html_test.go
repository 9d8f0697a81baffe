package report

import (
	"bytes"
	"context"
	"html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// probe runs in a copy of the report, after the page's own script: it marks each diff with
// whether the browser really shows it, so --dump-dom tells what a person would see.
const probe = `<script>
document.querySelectorAll('pre.diff, ul.warnings, table.nics').forEach(function (p) {
  var r = p.getBoundingClientRect(), cs = getComputedStyle(p);
  // checkVisibility also sees what a closed <details> hides (content-visibility).
  var shown = r.width > 0 && r.height > 0 && cs.visibility !== 'hidden' &&
    p.checkVisibility({contentVisibilityAuto: true, opacityProperty: true, visibilityProperty: true});
  p.dataset.visible = shown ? 'yes' : 'no';
});
document.body.dataset.probed = 'yes';
</script>
`

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true and no chromium to check the HTML report in (scripts/install-deps.sh installs it)")
	}
	t.Skip("no chromium: the HTML report is not checked in a browser")
	return ""
}

// artifacts is where tests leave files for people to look at: $RUNBOOK_ARTIFACTS, else
// .artifacts/ at the repository's root.
func artifacts(t *testing.T) string {
	dir := os.Getenv("RUNBOOK_ARTIFACTS")
	if dir == "" {
		wd, _ := os.Getwd()
		for d := wd; d != "/"; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(d, ".artifacts")
				break
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runChromium runs headless Chromium once with its own profile directory, bounded in time.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// TestHTMLInChromium opens the report in a real browser: the summary numbers are right, a
// drifting host's diff is in the page and visible, markup inside a diff is shown as text
// and never runs, and the page asks the network for nothing. A screenshot is kept.
func TestHTMLInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	bin := chromium(t)
	rep, err := Build(context.Background(), fleet(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rep.HTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	// Self-contained: no URL that a browser would fetch.
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//|url\(|@import|<link`).FindString(page); m != "" {
		t.Errorf("the report refers to an outside resource: %q", m)
	}
	dir := t.TempDir()
	reportPath := filepath.Join(dir, "report.html")
	probePath := filepath.Join(dir, "probe.html")
	if err := os.WriteFile(reportPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(probePath, []byte(strings.Replace(page, "</body>", probe+"</body>", 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	dom := string(runChromium(t, bin, "--dump-dom", "file://"+probePath))
	if !strings.Contains(dom, `data-probed="yes"`) {
		t.Fatalf("the probe did not run; DOM:\n%s", dom)
	}
	for key, want := range map[string]string{"hosts": "4", "in_sync": "1", "drifting": "1", "failed": "1", "unreachable": "1"} {
		re := regexp.MustCompile(`data-summary="` + key + `">(\d+)<`)
		if m := re.FindStringSubmatch(dom); m == nil || m[1] != want {
			t.Errorf("summary %s = %v, want %s", key, m, want)
		}
	}
	// web1's diffs: shown, the markup in one of them as text.
	diffs := regexp.MustCompile(`(?s)<pre class="diff" data-visible="(yes|no)">(.*?)</pre>`).FindAllStringSubmatch(dom, -1)
	if len(diffs) != 2 {
		t.Fatalf("%d diffs in the page, want 2:\n%s", len(diffs), dom)
	}
	text := ""
	for _, d := range diffs {
		if d[1] != "yes" {
			t.Errorf("a diff is not visible: %s", d[2])
		}
		text += html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(d[2], ""))
	}
	for _, want := range []string{"-old motd", "+new motd", "-vm.swappiness = 60", "+" + evilDiff} {
		if !strings.Contains(text, want) {
			t.Errorf("diff text %q not in the page; diffs read:\n%s", want, text)
		}
	}
	if strings.Contains(dom, "data-pwned") || strings.Contains(dom, "<b>bold</b>") {
		t.Error("markup from a diff became part of the page")
	}
	if !strings.Contains(dom, `class="host-row" data-status="drift" data-host="web1"`) {
		t.Error("web1's row is missing")
	}
	// web2's warning is shown; its NIC table is in the page (folded: its summary says how
	// many NICs), the hostile driver name as text.
	if !strings.Contains(dom, `<ul class="warnings" data-visible="yes"><li>`+pcieWarningText+`</li></ul>`) {
		t.Error("web2's PCIe warning is not shown")
	}
	if !strings.Contains(dom, `<table class="nics" data-visible="no">`) || !strings.Contains(dom, `<tr data-nic="ens2f0"><td>ens2f0</td><td>mlx5_core</td>`) ||
		!strings.Contains(dom, `<summary>web2: 2 NICs (run 4,`) || !strings.Contains(dom, `&lt;img src=x`) {
		t.Error("web2's NIC table is not in the page as it should be")
	}

	shot := filepath.Join(artifacts(t), "report.png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,2000", "--hide-scrollbars", "file://"+reportPath)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if bnd := img.Bounds(); bnd.Dx() != 1280 || bnd.Dy() != 2000 {
		t.Errorf("screenshot is %v", bnd)
	}
	// Not a blank page: the header band is dark, the page below it light.
	r, g, bl, _ := img.At(5, 5).RGBA()
	r2, g2, b2, _ := img.At(640, 1900).RGBA()
	if r+g+bl > 3*0x6000 || r2+g2+b2 < 3*0xe000 {
		t.Errorf("screenshot colours: header %x/%x/%x, page %x/%x/%x", r, g, bl, r2, g2, b2)
	}
	t.Logf("screenshot: %s", shot)
}
