package view

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

// TestDocsOutput keeps docs/compliance.md's section on the output for machines true: its
// JSON lines are what the JSON view writes for the results they describe, the text example
// is what the human view prints for the same result, and the field tables name exactly the
// fields a result line and its transaction have.
func TestDocsOutput(t *testing.T) {
	src, err := os.ReadFile("../../docs/compliance.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src)
	start := strings.Index(doc, "## Output for machines")
	if start < 0 {
		t.Fatal("docs/compliance.md has no section on the output for machines")
	}
	section := doc[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]

	block := regexp.MustCompile("(?s)```json\n(.*?)```").FindStringSubmatch(section)
	if block == nil {
		t.Fatal("no JSON example")
	}
	lines := strings.Split(strings.TrimSpace(block[1]), "\n")
	if len(lines) != 2 {
		t.Fatalf("the JSON example has %d lines, want a result and a recap", len(lines))
	}
	var in jsonResult
	if err := json.Unmarshal([]byte(lines[0]), &in); err != nil {
		t.Fatal(err)
	}
	x := in.Transaction
	r := run.Result{Host: in.Host, Play: in.Play, Task: in.Task, Module: in.Module, Status: run.Status(in.Status), Msg: in.Msg,
		Duration: time.Duration(in.DurationMS) * time.Millisecond,
		Transaction: &modules.Transaction{ID: x.ID, State: x.State, Module: x.Module, Why: x.Why, Restored: x.Restored,
			Verification: x.Verification, Verified: x.Verified, Error: x.Error, Armed: x.Armed}}
	var b bytes.Buffer
	(&JSON{W: &b}).TaskDone(r)
	if got := strings.TrimSpace(b.String()); got != lines[0] {
		t.Errorf("the JSON view writes\n%s\nthe docs say\n%s", got, lines[0])
	}
	var recap struct {
		Hosts      map[string]map[string]any `json:"hosts"`
		DurationMS int64                     `json:"duration_ms"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &recap); err != nil {
		t.Fatal(err)
	}
	st := recap.Hosts["lab01"]
	b.Reset()
	(&JSON{W: &b}).Finish(&run.Recap{Duration: time.Duration(recap.DurationMS) * time.Millisecond, Hosts: map[string]*run.Stats{
		"lab01": {OK: int(st["ok"].(float64)), Failed: int(st["failed"].(float64))}}})
	if got := strings.TrimSpace(b.String()); got != lines[1] {
		t.Errorf("the JSON view's recap is\n%s\nthe docs say\n%s", got, lines[1])
	}

	text := regexp.MustCompile("(?s)\n```\n(lab01 rolled back.*?)```").FindStringSubmatch(section)
	if text == nil {
		t.Fatal("no text example")
	}
	b.Reset()
	(&Human{W: &b}).TaskDone(r)
	if b.String() != text[1] {
		t.Errorf("the human view prints\n%s\nthe docs say\n%s", b.String(), text[1])
	}

	for _, tc := range []struct {
		table string // the first column's heading
		typ   reflect.Type
	}{
		{"`result` field", reflect.TypeOf(jsonResult{})},
		{"field", reflect.TypeOf(Txn{})},
	} {
		i := strings.Index(section, "| "+tc.table+" | meaning |")
		if i < 0 {
			t.Fatalf("no table headed %q", tc.table)
		}
		var documented []string
		for _, row := range strings.Split(section[i:], "\n")[2:] {
			if !strings.HasPrefix(row, "| ") {
				break
			}
			cell := strings.Split(row, " | ")[0]
			for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(cell, -1) {
				documented = append(documented, m[1])
			}
		}
		var fields []string
		for f := range tc.typ.Fields() {
			fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		slices.Sort(documented)
		slices.Sort(fields)
		if !slices.Equal(documented, fields) {
			t.Errorf("the table %q names %v; the output has %v", tc.table, documented, fields)
		}
	}
}
