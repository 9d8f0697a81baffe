// Package view shows a run's events: for people (coloured lines as results arrive and a
// recap table), as JSON lines, and as JUnit XML. Every view implements run.Observer plus
// Finish, fed by the same engine events.
package view

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"hash/fnv"
	"io"
	"math/big"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fatih/color"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/internal/termsafe"
	"github.com/runbook/runbook/modules"
)

// View is an engine observer that can also close the run's output.
type View interface {
	run.Observer
	Finish(r *run.Recap) error
}

// Human prints a line per result as it arrives and a recap at the end. By default only
// results that matter get a line (changed, drift, unknown, failed, unreachable, and any
// result with warnings); ok and skipped ones are counted in the recap. Verbose prints
// every result; Quiet only failures.
type Human struct {
	W     io.Writer
	Color bool
	// Verbose prints every result, ok and skipped too, and every host in the recap.
	Verbose bool
	// Quiet prints only failed and unreachable results (and the recap).
	Quiet bool
	// Diff shows before/after differences.
	Diff bool
	// Live redraws a progress line (hosts done of Total, counts per status, the host
	// waiting longest) below the results; for terminals only.
	Live  bool
	Total int

	mu       sync.Mutex
	progress progress
	stop     chan struct{}
	stopped  chan struct{}
}

// progress is what the live line shows.
type progress struct {
	// seen are the hosts that have started (a host runs once per play); idle those that
	// have finished their last play so far and not started another.
	seen, idle map[string]bool
	counts     map[run.Status]int
	last       map[string]time.Time // running hosts: when they last reported
	lastTask   map[string]string
	drawn      bool
}

// RecapHostsAll is how many hosts the recap lists in full; past it, hosts with nothing but
// ok and skipped results are summed up in one line (unless Verbose).
const RecapHostsAll = 20

func (h *Human) shows(r run.Result) bool {
	switch {
	case h.Verbose:
		return true
	case r.Status == run.Failed || r.Status == run.Unreachable:
		return true
	case h.Quiet:
		return false
	case r.Status == run.OK || r.Status == run.Skipped:
		return len(r.Warnings) > 0 || r.RebootRequired
	}
	return true
}

var hostColors = []color.Attribute{color.FgCyan, color.FgMagenta, color.FgBlue, color.FgGreen, color.FgYellow, color.FgHiCyan, color.FgHiMagenta, color.FgHiBlue}

func (h *Human) paint(s string, attrs ...color.Attribute) string {
	if !h.Color {
		return s
	}
	c := color.New(attrs...)
	c.EnableColor()
	return c.Sprint(s)
}

// hostTag gives each host a colour that stays the same from run to run.
func (h *Human) hostTag(host string) string {
	f := fnv.New32a()
	f.Write([]byte(host))
	return h.paint(host, hostColors[int(f.Sum32())%len(hostColors)])
}

func statusColor(s run.Status) []color.Attribute {
	switch s {
	case run.Changed:
		return []color.Attribute{color.FgYellow}
	case run.Drift, run.Unknown:
		return []color.Attribute{color.FgMagenta}
	case run.Failed, run.Unreachable:
		return []color.Attribute{color.FgRed, color.Bold}
	case run.Skipped:
		return []color.Attribute{color.FgHiBlack}
	}
	return []color.Attribute{color.FgGreen}
}

// HostStarted counts the host for the live line.
func (h *Human) HostStarted(host string) {
	if !h.Live {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p := &h.progress
	if p.last == nil {
		p.last, p.lastTask, p.counts = map[string]time.Time{}, map[string]string{}, map[run.Status]int{}
		p.seen, p.idle = map[string]bool{}, map[string]bool{}
		h.stop, h.stopped = make(chan struct{}), make(chan struct{})
		go h.tick()
	}
	p.seen[host] = true
	delete(p.idle, host)
	p.last[host] = time.Now()
}

// HostDone counts the host as done for the live line.
func (h *Human) HostDone(host string, _ run.Stats) {
	if !h.Live {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.progress.idle[host] = true
	delete(h.progress.last, host)
	delete(h.progress.lastTask, host)
}

// Hold runs fn with the live line cleared and not redrawn, and no result printed, until fn
// returns: for a prompt on the same terminal (a key's passphrase).
func (h *Human) Hold(fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clearLine()
	fn()
}

// tick redraws the live line a few times a second until Finish.
func (h *Human) tick() {
	defer close(h.stopped)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.mu.Lock()
			h.draw()
			h.mu.Unlock()
		}
	}
}

// clearLine removes the live line so a result can take its place; h.mu is held.
func (h *Human) clearLine() {
	if h.progress.drawn {
		io.WriteString(h.W, "\r\033[K")
		h.progress.drawn = false
	}
}

// draw writes the live line; h.mu is held.
func (h *Human) draw() {
	p := &h.progress
	h.clearLine()
	var b strings.Builder
	total := max(h.Total, len(p.seen))
	fmt.Fprintf(&b, "[%d/%d hosts done]", len(p.idle), total)
	for _, st := range []run.Status{run.OK, run.Changed, run.Drift, run.Failed, run.Unreachable} {
		if n := p.counts[st]; n > 0 {
			fmt.Fprintf(&b, " %s=%d", st, n)
		}
	}
	var slow string
	var since time.Time
	for host, t := range p.last {
		if slow == "" || t.Before(since) || (t.Equal(since) && host < slow) {
			slow, since = host, t
		}
	}
	if slow != "" {
		fmt.Fprintf(&b, "  waiting longest: %s %s", termsafe.Line(slow), time.Since(since).Round(100*time.Millisecond))
		if t := p.lastTask[slow]; t != "" {
			fmt.Fprintf(&b, " (after \"%s\")", termsafe.Line(t))
		}
	}
	io.WriteString(h.W, h.paint(b.String(), color.FgHiBlack))
	p.drawn = true
}

// TaskDone prints one result.
func (h *Human) TaskDone(r run.Result) {
	if h.Live {
		// Unlocked by defer: the engine recovers a panic in a view, and a lock left held
		// would stop every host at its next result.
		func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.progress.counts != nil {
				h.progress.counts[r.Status]++
				h.progress.last[r.Host] = time.Now()
				h.progress.lastTask[r.Host] = r.Task
			}
		}()
	}
	if !h.shows(r) {
		return
	}
	r = forPeople(r)
	name := r.Task
	if r.Handler {
		name = "handler " + name
	}
	if r.Item != "" {
		name += " [" + r.Item + "]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-11s %s", h.hostTag(r.Host), h.paint(string(r.Status), statusColor(r.Status)...), name)
	if r.Duration >= 100*time.Millisecond {
		fmt.Fprintf(&b, " (%s)", r.Duration.Round(10*time.Millisecond))
	}
	if r.RebootRequired {
		b.WriteString(" " + h.paint("[reboot required]", color.FgYellow))
	}
	if r.Msg != "" && (h.Verbose || r.Status == run.Failed || r.Status == run.Unreachable || r.Status == run.Changed || r.Status == run.Drift || r.Status == run.Unknown) {
		b.WriteString(": " + firstLines(r.Msg, 6))
	}
	b.WriteString("\n")
	if h.Diff && r.Diff != nil {
		b.WriteString(indent(Unified(r.Diff), "    "))
	}
	for _, w := range r.Warnings {
		b.WriteString("    " + h.paint("warning: ", color.FgYellow) + strings.ReplaceAll(strings.TrimRight(w, "\n"), "\n", "\n      ") + "\n")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clearLine()
	io.WriteString(h.W, b.String())
}

// Finish prints the recap table.
func (h *Human) Finish(r *run.Recap) error {
	if h.stop != nil {
		close(h.stop)
		<-h.stopped
		h.stop = nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clearLine()
	hosts := make([]string, 0, len(r.Hosts))
	for name := range r.Hosts {
		hosts = append(hosts, name)
	}
	sort.Strings(hosts)
	fmt.Fprintf(h.W, "\nRECAP\n")
	width := 4
	for _, n := range hosts {
		width = max(width, len(termsafe.Line(n)))
	}
	summed, allOK := 0, map[run.Status]int{}
	for _, n := range hosts {
		s := r.Hosts[n]
		if !h.Verbose && len(hosts) > RecapHostsAll && s.Changed+s.Drift+s.Failed+s.Unreachable+s.Unknown == 0 && !s.RebootRequired {
			summed++
			allOK[run.OK] += s.OK
			allOK[run.Skipped] += s.Skipped
			continue
		}
		line := fmt.Sprintf("  %-*s  ok=%d changed=%d drift=%d failed=%d unreachable=%d skipped=%d", width, termsafe.Line(n), s.OK, s.Changed, s.Drift, s.Failed, s.Unreachable, s.Skipped)
		if s.Unknown > 0 {
			line += fmt.Sprintf(" unknown=%d", s.Unknown)
		}
		if s.RebootRequired {
			line += " reboot_required"
		}
		fmt.Fprintln(h.W, line)
	}
	if summed > 0 {
		fmt.Fprintf(h.W, "  %d more hosts with nothing to report (ok=%d skipped=%d in all; -v lists them)\n", summed, allOK[run.OK], allOK[run.Skipped])
	}
	state := "finished"
	if r.Interrupted {
		state = "interrupted"
	}
	if r.Stopped != "" {
		state = "stopped"
		fmt.Fprintf(h.W, "\n%s\n", termsafe.Text(r.Stopped))
	}
	_, err := fmt.Fprintf(h.W, "\n%s: %d hosts in %s, exit code %d\n", state, len(hosts), r.Duration.Round(time.Millisecond), r.ExitCode())
	return err
}

// forPeople is r as the human views print it: every text in it that a host, a file or an
// inventory could have written is made safe for the terminal (termsafe), names to stay on
// one line. The views take each result through it before anything else, so the escapes
// they add themselves (colours, the live line) are the only ones that reach the terminal.
func forPeople(r run.Result) run.Result {
	r.Host, r.Play, r.Task, r.Module, r.Item = termsafe.Line(r.Host), termsafe.Line(r.Play), termsafe.Line(r.Task),
		termsafe.Line(r.Module), termsafe.Line(r.Item)
	r.Msg = termsafe.Text(r.Msg)
	if r.Diff != nil {
		r.Diff = &modules.Diff{Before: termsafe.Text(r.Diff.Before), After: termsafe.Text(r.Diff.After),
			BeforeHeader: termsafe.Line(r.Diff.BeforeHeader), AfterHeader: termsafe.Line(r.Diff.AfterHeader)}
	}
	if r.Warnings != nil {
		ws := make([]string, len(r.Warnings))
		for i, w := range r.Warnings {
			ws[i] = termsafe.Text(w)
		}
		r.Warnings = ws
	}
	return r
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("... (%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, "\n    ")
}

func indent(s, pre string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return pre + strings.Join(lines, "\n"+pre) + "\n"
}

// JSON writes one object per line: a "result" per host per task as it arrives, then a
// final "recap".
type JSON struct {
	W  io.Writer
	mu sync.Mutex
}

type jsonResult struct {
	Type           string          `json:"type"`
	Host           string          `json:"host"`
	Play           string          `json:"play"`
	Task           string          `json:"task"`
	Module         string          `json:"module"`
	Item           string          `json:"item,omitempty"`
	Handler        bool            `json:"handler,omitempty"`
	Status         string          `json:"status"`
	Changed        bool            `json:"changed"`
	Msg            string          `json:"msg,omitempty"`
	RC             *int            `json:"rc,omitempty"`
	Diff           string          `json:"diff,omitempty"`
	Data           json.RawMessage `json:"data,omitempty"`
	RebootRequired bool            `json:"reboot_required,omitempty"`
	Warnings       []string        `json:"warnings,omitempty"`
	DurationMS     int64           `json:"duration_ms"`
}

func (j *JSON) HostStarted(string)         {}
func (j *JSON) HostDone(string, run.Stats) {}

// TaskDone writes one result line.
func (j *JSON) TaskDone(r run.Result) {
	out := jsonResult{Type: "result", Host: r.Host, Play: r.Play, Task: r.Task, Module: r.Module, Item: r.Item, Handler: r.Handler,
		Status: string(r.Status), Changed: r.Status == run.Changed, Msg: r.Msg, RebootRequired: r.RebootRequired,
		Warnings: r.Warnings, DurationMS: r.Duration.Milliseconds()}
	out.Data, out.RC = jsonData(r.Data)
	if r.Diff != nil {
		out.Diff = Unified(r.Diff)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = json.NewEncoder(j.W).Encode(out)
}

// jsonData renders a result's registered data for the JSON view, and its rc when it has
// a whole one.
func jsonData(data cty.Value) (json.RawMessage, *int) {
	if data == cty.NilVal || data.IsNull() || !data.IsWhollyKnown() {
		return nil, nil
	}
	data, _ = data.UnmarkDeep()
	raw, err := ctyjson.SimpleJSONValue{Value: data}.MarshalJSON()
	if err != nil {
		return nil, nil
	}
	var rc *int
	if data.Type().IsObjectType() && data.Type().HasAttribute("rc") {
		if v := data.GetAttr("rc"); !v.IsNull() && v.Type() == cty.Number {
			if n, acc := v.AsBigFloat().Int64(); acc == big.Exact {
				i := int(n)
				rc = &i
			}
		}
	}
	return raw, rc
}

// Finish writes the recap line.
func (j *JSON) Finish(r *run.Recap) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	hosts := map[string]map[string]any{}
	for n, s := range r.Hosts {
		hosts[n] = map[string]any{"ok": s.OK, "changed": s.Changed, "drift": s.Drift, "unknown": s.Unknown, "failed": s.Failed,
			"unreachable": s.Unreachable, "skipped": s.Skipped, "reboot_required": s.RebootRequired}
	}
	return json.NewEncoder(j.W).Encode(map[string]any{"type": "recap", "hosts": hosts, "exit_code": r.ExitCode(),
		"interrupted": r.Interrupted, "stopped": r.Stopped, "duration_ms": r.Duration.Milliseconds()})
}

// JUnit collects results and writes JUnit XML at the end: one test suite per host, one test
// case per task (and for_each element); failed and unreachable are failures, drift is a
// failure in check mode (it is what a compliance job looks for), skipped is skipped.
//
// A CI page shows the report to people, so host text is escaped as on a terminal
// (termsafe): controls, C1 controls and bidirectional overrides, which XML would keep or
// turn into U+FFFD, read as \x1b, \u009b, \u202e; attributes (names, messages) stay on
// one line.
type JUnit struct {
	W  io.Writer
	mu sync.Mutex
	rs []run.Result
}

func (u *JUnit) HostStarted(string)         {}
func (u *JUnit) HostDone(string, run.Stats) {}

// TaskDone keeps the result.
func (u *JUnit) TaskDone(r run.Result) {
	u.mu.Lock()
	u.rs = append(u.rs, r)
	u.mu.Unlock()
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// junitFirstLine is the first line of msg, escaped, saying how many more there are.
func junitFirstLine(msg string) string {
	first, rest, more := strings.Cut(strings.TrimRight(msg, "\n"), "\n")
	if !more {
		return termsafe.Line(first)
	}
	return fmt.Sprintf("%s ... (%d more lines)", termsafe.Line(first), strings.Count(rest, "\n")+1)
}

// Finish writes the XML document.
func (u *JUnit) Finish(_ *run.Recap) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	byHost := map[string]*junitSuite{}
	var order []string
	for _, r := range u.rs {
		s := byHost[r.Host]
		if s == nil {
			s = &junitSuite{Name: termsafe.Line(r.Host)}
			byHost[r.Host] = s
			order = append(order, r.Host)
		}
		name := r.Task
		if r.Item != "" {
			name += " [" + r.Item + "]"
		}
		c := junitCase{Name: termsafe.Line(name), Classname: termsafe.Line(r.Play), Time: fmt.Sprintf("%.3f", r.Duration.Seconds())}
		switch r.Status {
		case run.Failed, run.Unreachable, run.Drift:
			body := r.Msg
			if r.Diff != nil {
				body += "\n" + Unified(r.Diff)
			}
			c.Failure = &junitMessage{Message: string(r.Status) + ": " + junitFirstLine(r.Msg), Type: string(r.Status),
				Body: termsafe.Text(body)}
			s.Failures++
		case run.Skipped:
			c.Skipped = &junitMessage{Message: termsafe.Line(r.Msg)}
			s.Skipped++
		default:
			c.SystemOut = string(r.Status)
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	sort.Strings(order)
	doc := junitSuites{}
	for _, h := range order {
		doc.Suites = append(doc.Suites, *byHost[h])
	}
	if _, err := io.WriteString(u.W, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(u.W)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(u.W, "\n")
	return err
}

// Unified renders a diff as unified-diff text with a few lines of context. The headers
// come from the host (a path) and are escaped to one line each (termsafe.Line), so that a
// header cannot add lines that read as the diff's own, in any printer or report.
func Unified(d *modules.Diff) string {
	if d == nil {
		return ""
	}
	before, after := termsafe.Line(d.BeforeHeader), termsafe.Line(d.AfterHeader)
	if before == "" {
		before = "before"
	}
	if after == "" {
		after = "after"
	}
	a, b := splitLines(d.Before), splitLines(d.After)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", before, after)
	for _, op := range diffLines(a, b) {
		out.WriteString(op)
		out.WriteString("\n")
	}
	return out.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diffLines is a longest-common-subsequence line diff, keeping 3 lines of context around
// changes. Inputs are configuration files: small enough for the quadratic table.
func diffLines(a, b []string) []string {
	const maxCells = 4_000_000
	if len(a)*len(b) > maxCells {
		var out []string
		for _, l := range a {
			out = append(out, "-"+l)
		}
		for _, l := range b {
			out = append(out, "+"+l)
		}
		return out
	}
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, " "+a[i])
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, "-"+a[i])
			i++
		default:
			ops = append(ops, "+"+b[j])
			j++
		}
	}
	// Keep context lines only near changes.
	keep := make([]bool, len(ops))
	for k, op := range ops {
		if op[0] != ' ' {
			for c := max(0, k-3); c <= min(len(ops)-1, k+3); c++ {
				keep[c] = true
			}
		}
	}
	var out []string
	skipped := false
	for k, op := range ops {
		if keep[k] {
			out = append(out, op)
			skipped = false
		} else if !skipped {
			out = append(out, "@@")
			skipped = true
		}
	}
	return out
}
