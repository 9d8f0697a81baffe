package view

import (
	"encoding/json"
	"io"
	"sync"

	"github.com/runbook/runbook/engine/run"
)

// JSON writes one object per line: a "result" per host per task as it arrives, then a
// final "recap".
type JSON struct {
	W  io.Writer
	mu sync.Mutex
}

type jsonResult struct {
	Type           string         `json:"type"`
	Host           string         `json:"host"`
	Play           string         `json:"play"`
	Task           string         `json:"task"`
	Module         string         `json:"module"`
	Item           string         `json:"item,omitempty"`
	Handler        bool           `json:"handler,omitempty"`
	Status         string         `json:"status"`
	Changed        bool           `json:"changed"`
	Msg            string         `json:"msg,omitempty"`
	RC             *int           `json:"rc,omitempty"`
	Diff           string         `json:"diff,omitempty"`
	Data           map[string]any `json:"data,omitempty"`
	RebootRequired bool           `json:"reboot_required,omitempty"`
	Warnings       []string       `json:"warnings,omitempty"`
	DurationMS     int64          `json:"duration_ms"`
}

func (j *JSON) HostStarted(string)         {}
func (j *JSON) HostDone(string, run.Stats) {}

// Hold runs fn: the JSON view draws nothing between results.
func (j *JSON) Hold(fn func()) { fn() }

// TaskDone writes one result line.
func (j *JSON) TaskDone(r run.Result) {
	out := jsonResult{Type: "result", Host: r.Host, Play: r.Play, Task: r.Task, Module: r.Module, Item: r.Item, Handler: r.Handler,
		Status: string(r.Status), Changed: r.Status == run.Changed, Msg: r.Msg, RebootRequired: r.RebootRequired,
		Warnings: r.Warnings, DurationMS: r.Duration.Milliseconds()}
	out.Data, out.RC = dataOf(r)
	if r.Diff != nil {
		out.Diff = Unified(r.Diff)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = json.NewEncoder(j.W).Encode(out)
}

// dataOf is what a result line shows of the module's data: the data, and a command's exit
// code on its own (rc). It is the one place the views read run.Result.Data.
func dataOf(r run.Result) (data map[string]any, rc *int) {
	if n, ok := intOf(r.Data["rc"]); ok {
		rc = &n
	}
	return r.Data, rc
}

func intOf(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		return int(x), true
	case json.Number:
		n, err := x.Int64()
		return int(n), err == nil
	}
	return 0, false
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

// Footer writes nothing: the recap line is the last of the stream.
func (j *JSON) Footer(Footer) {}
