package view

import (
	"encoding/json"
	"io"
	"math/big"
	"sync"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

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
	Transaction    *Txn            `json:"transaction,omitempty"`
	DurationMS     int64           `json:"duration_ms"`
}

// Txn is what a JSON result line (and `runbook report -o json`) says of the transaction
// its change ran in (modules/txn): how it ended, what a rollback restored and what its
// verification found. It is the output's own shape, not the helper's wire struct, so the
// output stays as documented (docs/compliance.md) when the protocol changes.
type Txn struct {
	ID           string   `json:"id"`
	State        string   `json:"state"`
	Module       string   `json:"module,omitempty"`
	Why          string   `json:"why,omitempty"`
	Restored     []string `json:"restored,omitempty"`
	Verification []string `json:"verification,omitempty"`
	Verified     bool     `json:"verified"`
	Error        string   `json:"error,omitempty"`
	Armed        string   `json:"armed,omitempty"`
}

// TxnOf is t as the JSON outputs show it; nil for nil.
func TxnOf(t *modules.Transaction) *Txn {
	if t == nil {
		return nil
	}
	return &Txn{ID: t.ID, State: t.State, Module: t.Module, Why: t.Why, Restored: t.Restored, Verification: t.Verification,
		Verified: t.Verified, Error: t.Error, Armed: t.Armed}
}

func (j *JSON) HostStarted(string)         {}
func (j *JSON) HostDone(string, run.Stats) {}

// Hold runs fn: the JSON view draws nothing between results.
func (j *JSON) Hold(fn func()) { fn() }

// TaskDone writes one result line.
func (j *JSON) TaskDone(r run.Result) {
	out := jsonResult{Type: "result", Host: r.Host, Play: r.Play, Task: r.Task, Module: r.Module, Item: r.Item, Handler: r.Handler,
		Status: string(r.Status), Changed: r.Status == run.Changed, Msg: r.Msg, RebootRequired: r.RebootRequired,
		Warnings: r.Warnings, Transaction: TxnOf(r.Transaction), DurationMS: r.Duration.Milliseconds()}
	out.Data, out.RC = dataOf(r)
	if r.Diff != nil {
		out.Diff = Unified(r.Diff)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = json.NewEncoder(j.W).Encode(out)
}

// dataOf is what a result line shows of the module's data: the values it registered (its
// declared fields that are not null), and a command's exit code on its own (rc) when it has
// a whole one. It is the one place the views read run.Result.Data.
func dataOf(r run.Result) (json.RawMessage, *int) {
	data := r.Data
	if data == cty.NilVal || data.IsNull() || !data.IsWhollyKnown() || !data.Type().IsObjectType() {
		return nil, nil
	}
	data, _ = data.UnmarkDeep()
	set := map[string]cty.Value{}
	for k, v := range data.AsValueMap() {
		if !v.IsNull() {
			set[k] = v
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	raw, err := ctyjson.SimpleJSONValue{Value: cty.ObjectVal(set)}.MarshalJSON()
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
			"unreachable": s.Unreachable, "skipped": s.Skipped, "warnings": s.Warnings, "rescued": s.Rescued, "reboot_required": s.RebootRequired}
	}
	return json.NewEncoder(j.W).Encode(map[string]any{"type": "recap", "hosts": hosts, "exit_code": r.ExitCode(),
		"interrupted": r.Interrupted, "stopped": r.Stopped, "duration_ms": r.Duration.Milliseconds()})
}

// Footer writes nothing: the recap line is the last of the stream.
func (j *JSON) Footer(Footer) {}
