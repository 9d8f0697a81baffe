package view

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/internal/termsafe"
)

// JUnit collects results and writes JUnit XML at the end: one test suite per host, one test
// case per task (and for_each element); failed and unreachable are failures, drift is a
// failure in check mode (it is what a compliance job looks for), skipped is skipped. A
// change the host rolled back is a failure whose message names its transaction and whose
// text ends with what the rollback restored (TransactionLines).
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

// Hold runs fn: the JUnit view writes nothing before Finish.
func (u *JUnit) Hold(fn func()) { fn() }

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
			status := string(r.Status)
			if t := r.Transaction; t != nil {
				// The transaction's id names the journal on the host; its lines say
				// what the rollback restored and what it found.
				status += " (transaction " + t.ID + ")"
				body += "\n" + strings.Join(TransactionLines(t), "\n")
			}
			c.Failure = &junitMessage{Message: termsafe.Line(status) + ": " + junitFirstLine(r.Msg), Type: string(r.Status),
				Body: termsafe.Text(body)}
			s.Failures++
		case run.Skipped:
			c.Skipped = &junitMessage{Message: termsafe.Line(r.Msg)}
			s.Skipped++
		default:
			c.SystemOut = string(r.Status)
			if t := r.Transaction; RolledBack(t) {
				// A transaction an earlier run left pending, rolled back when a helper
				// started: the host changed back, which a CI page should show.
				c.SystemOut += ": " + termsafe.Text(r.Msg+"\n"+strings.Join(TransactionLines(t), "\n"))
			}
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

// Footer writes nothing: the document ends with the last test suite.
func (u *JUnit) Footer(Footer) {}
