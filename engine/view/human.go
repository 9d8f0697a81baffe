package view

import (
	"fmt"
	"hash/fnv"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fatih/color"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/internal/termsafe"
	"github.com/runbook/runbook/modules"
)

// Human prints a line per result as it arrives and a recap at the end. By default only
// results that matter get a line (changed, drift, unknown, failed, unreachable, and any
// result with warnings); ok and skipped ones are counted in the recap. Verbose prints
// every result; Quiet only failures. After the recap come the drift report of a check
// (DriftReport), where the run was recorded and, with Verbose, how the helper was started.
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
	// DriftReport ends the output with the drift report (Drift): for check runs.
	DriftReport bool

	mu       sync.Mutex
	progress progress
	stop     chan struct{}
	stopped  chan struct{}
	drift    Drift
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

// rolledBackColor is the colour of "rolled back": no other status has it. A rollback that
// failed has the failed colour.
var rolledBackColor = []color.Attribute{color.FgCyan, color.Bold}

// resultColor is the colour of r's status word (StatusWord).
func resultColor(r run.Result) []color.Attribute {
	if r.Transaction != nil {
		switch r.Transaction.State {
		case modules.TxnRolledBack:
			return rolledBackColor
		case modules.TxnRollbackFailed:
			return statusColor(run.Failed)
		}
	}
	return statusColor(r.Status)
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
	if h.DriftReport {
		h.drift.TaskDone(r)
	}
	if !h.shows(r) {
		return
	}
	// The lines under the result say what the rollback restored: the message keeps why
	// and what was tried.
	r.Msg = TransactionMessage(r.Msg, r.Transaction)
	r = forPeople(r)
	name := r.Task
	if r.Handler {
		name = "handler " + name
	}
	if r.Item != "" {
		name += " [" + r.Item + "]"
	}
	var b strings.Builder
	word := StatusWord(r)
	fmt.Fprintf(&b, "%s %s%s %s", h.hostTag(r.Host), h.paint(word, resultColor(r)...), strings.Repeat(" ", max(0, 11-len(word))), name)
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
	if t := r.Transaction; t != nil && (t.State != modules.TxnConfirmed || h.Verbose) {
		b.WriteString(h.transactionLines(t))
	}
	for _, w := range r.Warnings {
		b.WriteString("    " + h.paint("warning: ", color.FgYellow) + strings.ReplaceAll(strings.TrimRight(w, "\n"), "\n", "\n      ") + "\n")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clearLine()
	io.WriteString(h.W, b.String())
}

// transactionLines are a transaction's lines under its result, like a diff's: which
// transaction and how it ended, each thing restored, and what still differs in the
// failed colour.
func (h *Human) transactionLines(t *modules.Transaction) string {
	var b strings.Builder
	for _, l := range TransactionLines(t) {
		switch {
		case strings.HasPrefix(l, "restored: "):
			l = h.paint("restored: ", rolledBackColor...) + strings.TrimPrefix(l, "restored: ")
		case strings.HasPrefix(l, "still different: "), strings.HasPrefix(l, "error: "):
			label, rest, _ := strings.Cut(l, ": ")
			l = h.paint(label+": ", statusColor(run.Failed)...) + rest
		}
		b.WriteString("    " + l + "\n")
	}
	return b.String()
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
		if !h.Verbose && len(hosts) > RecapHostsAll && s.Changed+s.Drift+s.Failed+s.Unreachable+s.Unknown+s.Warnings+s.Rescued == 0 && !s.RebootRequired {
			summed++
			allOK[run.OK] += s.OK
			allOK[run.Skipped] += s.Skipped
			continue
		}
		line := fmt.Sprintf("  %-*s  ok=%d changed=%d drift=%d failed=%d unreachable=%d skipped=%d", width, termsafe.Line(n), s.OK, s.Changed, s.Drift, s.Failed, s.Unreachable, s.Skipped)
		if s.Unknown > 0 {
			line += fmt.Sprintf(" unknown=%d", s.Unknown)
		}
		if s.Warnings > 0 {
			line += fmt.Sprintf(" warnings=%d", s.Warnings)
		}
		if s.Rescued > 0 {
			line += fmt.Sprintf(" rescued=%d", s.Rescued)
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

// Footer prints, after the recap, the drift report (DriftReport), the run's place in the
// history and, with Verbose, how the helper was started and verified.
func (h *Human) Footer(f Footer) {
	if h.DriftReport {
		h.drift.Color = h.Color
		_ = h.drift.Write(h.W)
	}
	if f.History != nil {
		fmt.Fprintf(h.W, "history: run %d in %s\n", f.History.RunID, f.History.Location)
	}
	if h.Verbose {
		io.WriteString(h.W, helperLine(f.Helper))
	}
}

// helperLine says how many hosts run the helper, how many got it pushed and how its file
// was verified.
func helperLine(s HelperStats) string {
	// A host runs a helper per identity its tasks run as (become): say so when a host ran
	// more than one.
	started := ""
	if s.Hosts != s.Pushed+s.Reused {
		started = fmt.Sprintf("%d helpers; ", s.Pushed+s.Reused)
	}
	sent := ""
	if s.Pushed > 0 && s.Sent > 0 {
		sent = fmt.Sprintf(", %.1f MB sent", float64(s.Sent)/1e6)
	}
	return fmt.Sprintf("helper: started on %d hosts (%spushed to %d%s); verified by hash on %d, unchanged since a hash on %d\n",
		s.Hosts, started, s.Pushed, sent, s.Hashed, s.Stamped)
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
