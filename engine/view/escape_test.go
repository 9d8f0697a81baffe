package view

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

// What a hostile host sends back: a failure whose stderr erases its own line and paints a
// fake ok, sets the clipboard (OSC 52) and the window title (OSC 0), a C1 CSI, a right-to-left
// override, and a warning that starts a line of its own.
const (
	fakeOK    = "boom\r\x1b[2Klab02 ok          deploy"
	clipboard = "\x1b]52;c;cm0gLXJmIH4=\x07"
	title     = "\x1b]0;all good\x1b\\"
)

func hostileResults() []run.Result {
	return []run.Result{
		{Host: "lab02", Play: "p", Task: "deploy", Module: "shell", Status: run.Failed, Msg: "exited with 1: " + fakeOK},
		{Host: "lab02", Play: "p", Task: "motd", Module: "copy", Status: run.Drift,
			Diff:     &modules.Diff{BeforeHeader: "/etc/motd (before)", Before: "hi" + clipboard + "\n", AfterHeader: "/etc/motd (after)", After: "hi\n"},
			Warnings: []string{"look" + title + "\nlab02 ok          deploy"}},
		{Host: "lab\x1b[8m03", Play: "p", Task: "x\u009b2K\u202edeliaf", Module: "command", Status: run.Changed, Msg: "ran\x00\x7f"},
		// A transport error that quotes what the host said (a banner, sudo's output).
		{Host: "lab04", Play: "p", Task: "connect", Status: run.Unreachable, Msg: "start helper on lab04: sudo said: \x1b]0;pwned\x07\xff"},
	}
}

// printerEscape matches the escapes the human views write themselves: colours and the live
// line's "clear to the end of the line".
var printerEscape = regexp.MustCompile(`\x1b\[[0-9;]*m|\r\x1b\[K`)

func TestHumanEscapesHostText(t *testing.T) {
	for _, colour := range []bool{false, true} {
		var b bytes.Buffer
		h := &Human{W: &b, Color: colour, Diff: true}
		for _, r := range hostileResults() {
			h.TaskDone(r)
		}
		h.Finish(&run.Recap{Hosts: map[string]*run.Stats{"lab02": {Failed: 1, Drift: 1}, "lab\x1b[8m03": {Changed: 1}, "lab04": {Unreachable: 1}}})
		out := b.String()
		rest := printerEscape.ReplaceAllString(out, "")
		if i := strings.IndexAny(rest, "\x1b\r\x00\x07\x7f\u009b\u202e\ufffd"); i >= 0 || !utf8.ValidString(rest) {
			t.Errorf("colour=%v: a control character reached the terminal at %d: %q", colour, i, rest[max(0, i-20):min(len(rest), i+20)])
		}
		for _, want := range []string{
			`exited with 1: boom\r\x1b[2Klab02 ok          deploy`,
			`hi\x1b]52;c;cm0gLXJmIH4=\x07`,
			`look\x1b]0;all good\x1b\` + "\n      lab02 ok", // the warning's second line is indented
			`lab\x1b[8m03`, `x\u009b2K\u202edeliaf`, `ran\x00\x7f`, `sudo said: \x1b]0;pwned\x07\xff`,
		} {
			if !strings.Contains(rest, want) {
				t.Errorf("colour=%v: output lacks %q:\n%s", colour, want, rest)
			}
		}
		// The failure is still there, on its own line, and no line claims ok.
		if !regexp.MustCompile(`(?m)^lab02 failed +deploy: exited with 1`).MatchString(rest) ||
			regexp.MustCompile(`(?m)^lab02 ok`).MatchString(rest) {
			t.Errorf("colour=%v: the failure is hidden or a fake ok shows:\n%s", colour, rest)
		}
		if colour && !strings.Contains(out, "\x1b[31;1mfailed") {
			t.Errorf("the printer's own colours are gone:\n%q", out)
		}
	}
}

func TestDriftReportEscapesHostText(t *testing.T) {
	d := &Drift{}
	for _, r := range hostileResults() {
		d.TaskDone(r)
	}
	var b bytes.Buffer
	if err := d.Write(&b); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(b.String(), "\x1b\r\x07") || !strings.Contains(b.String(), `hi\x1b]52;c;`) {
		t.Errorf("drift report:\n%q", b.String())
	}
}

// Machine output keeps the exact text, and JUnit stays valid XML whatever a host sends.
func TestMachineOutputKeepsHostText(t *testing.T) {
	var j bytes.Buffer
	jv := &JSON{W: &j}
	for _, r := range hostileResults() {
		jv.TaskDone(r)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(j.String(), "\n", 2)[0]), &first); err != nil || first["msg"] != "exited with 1: "+fakeOK {
		t.Errorf("JSON msg = %q, %v", first["msg"], err)
	}

	var x bytes.Buffer
	u := &JUnit{W: &x}
	for _, r := range hostileResults() {
		u.TaskDone(r)
	}
	if err := u.Finish(&run.Recap{}); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(x.Bytes(), &doc); err != nil {
		t.Fatalf("JUnit is not XML: %v\n%q", err, x.String())
	}
	if len(doc.Suites) != 3 || doc.Suites[1].Cases[0].Failure == nil || !strings.Contains(doc.Suites[1].Cases[0].Failure.Body, "lab02 ok") {
		t.Errorf("JUnit = %+v", doc.Suites)
	}
}

// A diff's headers come from the host: a newline in one cannot add lines that read as the
// diff's own (a forged "+++" header or change), in any view or report.
func TestUnifiedHeadersStayOnTheirLines(t *testing.T) {
	forged := "/srv/x\n+++ /etc/shadow (after)\n-root:!:1:0\n+root::1:0\n@@"
	tests := []struct {
		name string
		d    *modules.Diff
	}{
		{"before header", &modules.Diff{BeforeHeader: forged, Before: "a\n", After: "b\n"}},
		{"after header", &modules.Diff{AfterHeader: forged, Before: "a\n", After: "b\n"}},
		{"controls", &modules.Diff{BeforeHeader: "/srv/x\r\x1b[2K\u202e\u009b", AfterHeader: "/srv/x\t(after)", Before: "a\n", After: "b\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Unified(tt.d)
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if len(lines) != 4 || !strings.HasPrefix(lines[0], "--- ") || !strings.HasPrefix(lines[1], "+++ ") || lines[2] != "-a" || lines[3] != "+b" {
				t.Errorf("Unified = %q", got)
			}
			if strings.ContainsAny(got, "\r\x1b\t\u202e\u009b") {
				t.Errorf("Unified holds a control: %q", got)
			}
		})
	}
}

// JUnit reports are read by people on a CI page: host text in them shows the terminal's
// escapes, C1 controls and bidirectional overrides included, and attributes stay on one
// line; the document stays XML.
func TestJUnitEscapesHostText(t *testing.T) {
	var x bytes.Buffer
	u := &JUnit{W: &x}
	for _, r := range append(hostileResults(),
		run.Result{Host: "web1", Play: "p\u2066", Task: "deploy\u202edeliaf", Item: "a\nb", Status: run.Failed, Msg: "boom\x1b[2K\u009b\u202e\nsecond\nthird"},
		run.Result{Host: "web1", Play: "p", Task: "t", Status: run.Skipped, Msg: "skipped:\n\u202eok"}) {
		u.TaskDone(r)
	}
	if err := u.Finish(&run.Recap{}); err != nil {
		t.Fatal(err)
	}
	out := x.String()
	if i := strings.IndexAny(out, "\x1b\r\x07\u009b\u202e\u2066\ufffd"); i >= 0 {
		t.Errorf("a control at %d: %q", i, out[max(0, i-30):min(len(out), i+30)])
	}
	var doc junitSuites
	if err := xml.Unmarshal(x.Bytes(), &doc); err != nil {
		t.Fatalf("JUnit is not XML: %v\n%s", err, out)
	}
	web1 := doc.Suites[len(doc.Suites)-1]
	failed, skipped := web1.Cases[0], web1.Cases[1]
	for _, c := range [][2]string{
		{failed.Name, `deploy\u202edeliaf [a\nb]`},
		{failed.Classname, `p\u2066`},
		{failed.Failure.Message, `failed: boom\x1b[2K\u009b\u202e ... (2 more lines)`},
		{failed.Failure.Body, "boom\\x1b[2K\\u009b\\u202e\nsecond\nthird"},
		{skipped.Skipped.Message, `skipped:\n\u202eok`},
	} {
		if c[0] != c[1] {
			t.Errorf("got %q, want %q", c[0], c[1])
		}
	}
}
