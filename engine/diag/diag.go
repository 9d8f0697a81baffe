// Package diag renders diagnostics (errors and warnings with source ranges) for people and
// for machines. Every part of runbook reports problems as hcl.Diagnostics, so a runbook
// error, an inventory error and a flag error all look the same.
package diag

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/fatih/color"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/runbook/runbook/internal/termsafe"
)

// Printer renders diagnostics. It reads source lines from Files first, then from disk, so
// errors in inventories get snippets too; a diagnostic marked by HideSource (one about a
// variables file) names its place without them.
type Printer struct {
	Files map[string]*hcl.File
	Color bool
	cache map[string][]string
}

// Text writes diagnostics in the human form:
//
//	Error: Unsupported argument
//
//	  on site.hcl line 12, in task "x":
//	  12:     nme = "x"
//	          ^^^
//
//	An argument named "nme" is not expected here.
func (p *Printer) Text(w io.Writer, diags hcl.Diagnostics) {
	diags = append(hcl.Diagnostics(nil), diags...)
	Sort(diags)
	for _, d := range diags {
		p.one(w, d)
	}
}

func (p *Printer) one(w io.Writer, d *hcl.Diagnostic) {
	sev, paint := "Error", color.New(color.FgRed, color.Bold)
	if d.Severity == hcl.DiagWarning {
		sev, paint = "Warning", color.New(color.FgYellow, color.Bold)
	}
	bold := color.New(color.Bold)
	under := color.New(color.FgRed)
	if d.Severity == hcl.DiagWarning {
		under = color.New(color.FgYellow)
	}
	for _, c := range []*color.Color{paint, bold, under} {
		if p.Color {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
	}
	// A summary or detail can quote what a host, an inventory script or a file said: it is
	// shown escaped (termsafe), so that only the colours here reach the terminal.
	fmt.Fprintf(w, "%s %s\n", paint.Sprint(sev+":"), bold.Sprint(termsafe.Line(d.Summary)))
	if d.Subject != nil && d.Subject.Filename != "" && d.Subject.Start.Line > 0 {
		rng := *d.Subject
		var lines []string
		if _, hidden := hcl.DiagnosticExtra[secretSource](d); hidden {
			// The place only: the file's lines may hold secrets.
			fmt.Fprintf(w, "\n  on %s line %d, column %d (its lines are not shown: they may hold secrets)\n",
				termsafe.Line(rng.Filename), rng.Start.Line, rng.Start.Column)
		} else {
			fmt.Fprintf(w, "\n  on %s line %d%s:\n", termsafe.Line(rng.Filename), rng.Start.Line, termsafe.Line(p.context(rng)))
			lines = p.lines(rng.Filename)
		}
		last := rng.End.Line
		if last < rng.Start.Line {
			last = rng.Start.Line
		}
		// A long range (a whole block) shows its first lines only: the header says where.
		if last-rng.Start.Line > 3 {
			last = rng.Start.Line + 3
		}
		width := len(fmt.Sprint(last))
		for ln := rng.Start.Line; ln <= last && ln <= len(lines); ln++ {
			text := strings.ReplaceAll(lines[ln-1], "\t", " ")
			from, to := 1, len([]rune(text))+1
			if ln == rng.Start.Line {
				from = rng.Start.Column
			}
			if ln == rng.End.Line {
				to = rng.End.Column
			}
			if to <= from {
				to = from + 1
			}
			text, from, to = excerpt(text, from, to)
			fmt.Fprintf(w, "  %*d: %s\n", width, ln, termsafe.Line(text))
			fmt.Fprintf(w, "  %s  %s%s\n", strings.Repeat(" ", width), strings.Repeat(" ", from-1), under.Sprint(strings.Repeat("^", to-from)))
		}
	} else if d.Subject != nil && d.Subject.Filename != "" {
		fmt.Fprintf(w, "\n  in %s:\n", termsafe.Line(d.Subject.Filename))
	}
	if d.Detail != "" {
		fmt.Fprintf(w, "\n%s\n", termsafe.Text(d.Detail))
	}
	fmt.Fprintln(w)
}

// Lines longer than longLine runes (a JSON file written on one line, as programs often
// write it) are shown as an excerpt of excerptLen runes around the range.
const (
	longLine   = 500
	excerptLen = 200
)

// excerpt shortens a long line to the part around columns [from, to), marking what it cut
// with "…", and returns the columns of the range in the excerpt.
func excerpt(text string, from, to int) (string, int, int) {
	r := []rune(text)
	if len(r) <= longLine {
		return text, from, to
	}
	start := from - 1 - excerptLen/4
	if start < 0 {
		start = 0
	}
	if start > len(r) {
		start = len(r)
	}
	end := start + excerptLen
	if end > len(r) {
		end = len(r)
	}
	out := string(r[start:end])
	shift := start
	if start > 0 {
		out = "…" + out
		shift--
	}
	if end < len(r) {
		out += "…"
	}
	from -= shift
	if to > end+1 {
		to = end + 1
	}
	to -= shift
	if to <= from {
		to = from + 1
	}
	return out, from, to
}

// secretSource marks a diagnostic about a file whose lines must not be shown, keeping what
// was in Extra before.
type secretSource struct{ extra any }

func (s secretSource) UnwrapDiagnosticExtra() any { return s.extra }

// HideSource marks d so that Text names the place it is about (file, line and column) but
// never quotes the file's lines: a variables file holds the values of sensitive variables,
// and the line of a diagnostic about it (a syntax error, a value of the wrong type) would
// show them in the clear.
func HideSource(d *hcl.Diagnostic) {
	if _, done := hcl.DiagnosticExtra[secretSource](d); !done {
		d.Extra = secretSource{d.Extra}
	}
}

// context names the innermost labelled block a range is in, e.g. `, in task "x"`: in a
// runbook that is the task, which says more than the play around it.
func (p *Printer) context(rng hcl.Range) string {
	f := p.Files[rng.Filename]
	if f == nil {
		return ""
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		if strings.HasSuffix(rng.Filename, ".json") {
			return jsonContext(f.Bytes, rng.Start.Byte)
		}
		return ""
	}
	ctx := ""
	for body != nil {
		var inner *hclsyntax.Body
		for _, b := range body.Blocks {
			r := b.Range()
			if r.Start.Byte <= rng.Start.Byte && rng.Start.Byte < r.End.Byte {
				if len(b.Labels) > 0 {
					ctx = fmt.Sprintf("%s %q", b.Type, b.Labels[0])
				} else if ctx == "" {
					ctx = b.Type
				}
				inner = b.Body
				break
			}
		}
		body = inner
	}
	if ctx == "" {
		return ""
	}
	return ", in " + ctx
}

// jsonContext is context for a runbook file in HCL's JSON syntax, where a property is a
// block or an attribute only by the schema: it follows the runbook's labelled blocks
// (variable, play, output, task, handler, block and module, nested as in a play or a
// runbook module; rescue and always pass through) along the keys that lead to offset, and
// names the innermost.
func jsonContext(src []byte, offset int) string {
	path := jsonPath(src, offset)
	labelled := map[string]bool{"variable": true, "play": true, "output": true, "task": true, "handler": true, "block": true, "module": true}
	ctx := ""
	if len(path) >= 1 && path[0] == "locals" {
		ctx = "locals"
	}
	for i := 0; i+1 < len(path); {
		switch {
		case labelled[path[i]]:
			ctx = fmt.Sprintf("%s %q", path[i], path[i+1])
			if path[i] == "variable" || path[i] == "output" || path[i] == "task" || path[i] == "handler" {
				i = len(path) // what is inside them is not a block of the runbook's
				continue
			}
			i += 2
		case path[i] == "rescue" || path[i] == "always":
			i++
		default:
			i = len(path)
		}
	}
	if ctx == "" {
		return ""
	}
	return ", in " + ctx
}

// jsonPath lists the object keys that lead to offset in a JSON document (arrays are passed
// through), reading at most the document's bytes up to offset.
func jsonPath(src []byte, offset int) []string {
	type frame struct {
		object, wantKey bool
		key             string
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(src))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		past := dec.InputOffset() > int64(offset)
		if len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey {
			if k, ok := tok.(string); ok {
				stack[len(stack)-1].key = k
				stack[len(stack)-1].wantKey = false
				if past {
					break
				}
				continue
			}
		}
		if past {
			break
		}
		// A value ends here: the object around it wants its next key.
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
	var path []string
	for _, f := range stack {
		if f.object && f.key != "" {
			path = append(path, f.key)
		}
	}
	return path
}

// Sort orders diagnostics by file and position, keeping those without a position first, so
// output reads top to bottom like the source.
func Sort(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

func (p *Printer) lines(name string) []string {
	if p.cache == nil {
		p.cache = map[string][]string{}
	}
	if ls, ok := p.cache[name]; ok {
		return ls
	}
	var src []byte
	if f := p.Files[name]; f != nil {
		src = f.Bytes
	} else if b, err := os.ReadFile(name); err == nil {
		src = b
	}
	var ls []string
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		ls = append(ls, sc.Text())
	}
	p.cache[name] = ls
	return ls
}

// Pos is a position in a file, 1-based.
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// Range is a span of a file.
type Range struct {
	Filename string `json:"filename"`
	Start    Pos    `json:"start"`
	End      Pos    `json:"end"`
}

// Diagnostic is the JSON form of one diagnostic.
type Diagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	Range    *Range `json:"range,omitempty"`
}

// Convert turns hcl diagnostics into their JSON form.
func Convert(diags hcl.Diagnostics) []Diagnostic {
	out := make([]Diagnostic, 0, len(diags))
	for _, d := range diags {
		j := Diagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			j.Severity = "warning"
		}
		if d.Subject != nil && d.Subject.Filename != "" {
			s := d.Subject
			j.Range = &Range{
				Filename: s.Filename,
				Start:    Pos{s.Start.Line, s.Start.Column, s.Start.Byte},
				End:      Pos{s.End.Line, s.End.Column, s.End.Byte},
			}
		}
		out = append(out, j)
	}
	return out
}

// JSON writes one JSON object per line for each diagnostic: {"type":"diagnostic", ...}.
func JSON(w io.Writer, diags hcl.Diagnostics) error {
	enc := json.NewEncoder(w)
	for _, d := range Convert(diags) {
		if err := enc.Encode(struct {
			Type string `json:"type"`
			Diagnostic
		}{"diagnostic", d}); err != nil {
			return err
		}
	}
	return nil
}

// Errorf makes a diagnostic that has no source range, for problems with flags and files
// that are not runbook source.
func Errorf(summary, format string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...)}
}
