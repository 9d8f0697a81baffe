package run

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
)

// taskOutcome gathers one task's results on one host, element by element.
type taskOutcome struct {
	single  bool // no for_each
	overall Status
	last    cty.Value            // the last element's result
	perItem map[string]cty.Value // the results by for_each key
	hidden  bool                 // some key is sensitive
	// cur is the element being run, and curLabel how results show it
	cur      *config.Item
	curLabel string
}

// add records the result of the current element.
func (o *taskOutcome) add(r Result) {
	o.overall = worse(o.overall, r.Status)
	o.last = resultValue(r)
	if !o.single && o.cur != nil {
		o.perItem[keyString(o.cur.Key)] = o.last
	}
	o.cur, o.curLabel = nil, ""
}

// finishTask makes the task's outcome what later tasks see as task.NAME, notifies its
// handlers when it changed something, and returns its status.
func (hr *hostRun) finishTask(t *config.Task, o *taskOutcome) Status {
	if o.single {
		hr.results[t.Name] = o.last
	} else {
		results := objectOrEmpty(o.perItem)
		if o.hidden {
			// its attribute names are the sensitive keys
			results = results.Mark(config.Sensitive)
		}
		hr.results[t.Name] = cty.ObjectVal(map[string]cty.Value{
			"results": results,
			"changed": cty.BoolVal(o.overall == Changed),
			"status":  cty.StringVal(string(o.overall)),
		})
	}
	if o.overall == Changed || (hr.e.Options.Check && o.overall == Drift) {
		for _, n := range t.Notify {
			hr.notified[n.Name] = true
		}
	}
	return o.overall
}

// itemLabel is how results show a for_each element: its key, or for a sensitive key
// its position, "(sensitive value #2)".
func itemLabel(it config.Item, i int, single bool) string {
	switch {
	case single:
		return ""
	case it.Hidden():
		return fmt.Sprintf("(sensitive value #%d)", i+1)
	}
	return keyString(it.Key)
}

func keyString(k cty.Value) string {
	k, _ = k.Unmark()
	switch {
	case k.IsNull() || !k.IsKnown():
		return ""
	case k.Type() == cty.String:
		return k.AsString()
	case k.Type() == cty.Number:
		return k.AsBigFloat().Text('f', -1)
	}
	return fmt.Sprintf("%#v", k)
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}
