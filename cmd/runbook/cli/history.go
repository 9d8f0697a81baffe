package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/engine/history"
	"github.com/runbook/runbook/engine/report"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/engine/view"
	"github.com/runbook/runbook/modules"
)

// historyEnv names the history for exec, check and report when --history is not given.
const historyEnv = "RUNBOOK_HISTORY"

// historyOff is the --history (and RUNBOOK_HISTORY) value that keeps no record.
const historyOff = "off"

// complianceFlags are the flags of exec and check for the record a run leaves: the history
// and a Prometheus textfile. Ad-hoc `runbook run` keeps no record.
type complianceFlags struct {
	enabled   bool
	history   string
	noHistory bool
	metrics   string
	label     setString // --run-label
}

func (c *complianceFlags) add(cmd *cobra.Command) {
	c.enabled = true
	fl := cmd.Flags()
	fl.StringVar(&c.history, "history", "", "record the run in this SQLite file or postgres:// URL, or 'off' (default $"+historyEnv+
		", else $XDG_STATE_HOME/runbook/history.db or ~/.local/state/runbook/history.db)")
	fl.BoolVar(&c.noHistory, "no-history", false, "keep no record of this run (same as --history=off)")
	c.label.typ = "LABEL"
	fl.Var(&c.label, "run-label", "record the run under this label, which the shards of one fleet run share (--shard); `runbook report --run-label` shows them as one run")
	fl.StringVar(&c.metrics, "metrics", "", "write the run's outcome to this file as Prometheus text (atomically), for node_exporter's textfile collector")
}

// historyLocation resolves where the history is: the flag, else $RUNBOOK_HISTORY, else the
// default path. An empty location with no error means history is off.
func (a *app) historyLocation(flag string, off bool) (string, error) {
	loc := flag
	if loc == "" {
		loc = a.getenv(historyEnv)
	}
	if off || loc == historyOff {
		return "", nil
	}
	if loc != "" {
		return loc, nil
	}
	return history.DefaultPath(a.getenv)
}

// warn writes a warning on stderr: what goes wrong with the record never fails a run.
func (a *app) warn(summary, format string, args ...any) {
	p := &diag.Printer{Color: a.color(a.stderr)}
	p.Text(a.stderr, hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: summary, Detail: fmt.Sprintf(format, args...)}})
}

// compliance is what a run keeps besides its view: the history record and the metrics
// file.
type compliance struct {
	a       *app
	f       *runFlags
	rb      *config.Runbook
	started time.Time
	rec     *history.Recorder
}

// startCompliance opens the history and starts the run's record; it returns the observer
// the engine must feed (the view and whatever else listens).
func (a *app) startCompliance(cmd *cobra.Command, rb *config.Runbook, f *runFlags, v view.View) (run.Observer, *compliance) {
	c := &compliance{a: a, f: f, rb: rb, started: time.Now()}
	obs := observers{v}
	if !f.comp.enabled {
		return obs, c
	}
	loc, err := a.historyLocation(f.comp.history, f.comp.noHistory)
	if err != nil {
		a.warn("History not kept", "This run is not recorded: %s. Name a place with --history PATH or $%s, or turn the record off with --history=off.", err, historyEnv)
		return obs, c
	}
	if loc == "" {
		return obs, c
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
	defer cancel()
	store, err := history.Open(ctx, loc, history.Options{Create: true})
	if err != nil {
		a.warn("History not kept", "This run is not recorded: cannot open the history: %s.", err)
		return obs, c
	}
	mode := history.ModeExec
	if f.check {
		mode = history.ModeCheck
	}
	rec, err := history.Begin(ctx, store, history.Run{StartedAt: c.started, Runbook: rb.Path, RunbookSHA256: runbookSHA256(rb),
		User: a.userName(), Controller: hostname(), Mode: mode, Argv: redactedArgv(cmd, rb), Label: f.comp.label.value, Shard: runShard(f)},
		func(err error) {
			a.warn("History incomplete", "Recording this run in %s failed; the record stops here: %s.", store.Location(), err)
		})
	if err != nil {
		store.Close()
		a.warn("History not kept", "This run is not recorded in %s: %s.", store.Location(), err)
		return obs, c
	}
	c.rec = rec
	return append(obs, rec), c
}

// finish completes the record after the view's recap: the run's totals in the history and
// the metrics file. It returns the run's record for the view's footer, nil when none was
// kept.
func (c *compliance) finish(recap *run.Recap) *view.Record {
	a := c.a
	var recorded *view.Record
	if c.rec != nil {
		if c.rec.Finish(recap) == nil {
			recorded = &view.Record{RunID: c.rec.RunID(), Location: c.rec.Store().Location()}
		}
		defer c.rec.Store().Close()
	}
	if c.f.comp.metrics != "" {
		mode := history.ModeExec
		if c.f.check {
			mode = history.ModeCheck
		}
		if err := report.WriteMetrics(c.f.comp.metrics, report.MetricsRun{Runbook: c.rb.Path, Mode: mode, Started: c.started, Recap: recap}); err != nil {
			a.warn("Metrics not written", "Cannot write %s: %s.", c.f.comp.metrics, err)
		}
	}
	return recorded
}

// observers feeds every engine event to each observer in turn.
type observers []run.Observer

func (o observers) HostStarted(host string) {
	for _, x := range o {
		x.HostStarted(host)
	}
}

func (o observers) TaskDone(r run.Result) {
	for _, x := range o {
		x.TaskDone(r)
	}
}

func (o observers) HostDone(host string, s run.Stats) {
	for _, x := range o {
		x.HostDone(host, s)
	}
}

// runbookSHA256 hashes the runbook's files, by base name in order, so runs of different
// versions of a runbook can be told apart.
func runbookSHA256(rb *config.Runbook) string {
	names := make([]string, 0, len(rb.Files))
	for n := range rb.Files {
		names = append(names, n)
	}
	// by base name, then (for the files of runbook modules, which share names such as
	// main.hcl) by the path from the runbook's directory, which does not depend on where
	// the runbook is checked out
	dir, _ := filepath.Abs(rb.Dir)
	key := func(n string) string {
		abs, _ := filepath.Abs(n)
		rel, err := filepath.Rel(dir, abs)
		if err != nil {
			rel = n
		}
		return filepath.Base(n) + "\x00" + filepath.ToSlash(rel)
	}
	sort.Slice(names, func(i, j int) bool { return key(names[i]) < key(names[j]) })
	h := sha256.New()
	for _, n := range names {
		io.WriteString(h, filepath.Base(n))
		h.Write([]byte{0})
		if f := rb.Files[n]; f != nil {
			h.Write(f.Bytes)
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// redactedArgv is the command line as the history keeps it: the command, the flags that
// were set and the runbook, with the values of sensitive variables and a database password
// replaced.
func redactedArgv(cmd *cobra.Command, rb *config.Runbook) []string {
	sensitive := map[string]bool{}
	for _, v := range rb.Variables {
		if v.Sensitive {
			sensitive[v.Name] = true
		}
	}
	out := strings.Fields(cmd.CommandPath())
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		vals := []string{fl.Value.String()}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			vals = sv.GetSlice()
		}
		for _, v := range vals {
			switch fl.Name {
			case "var":
				if name, _, ok := strings.Cut(v, "="); ok && sensitive[strings.TrimSpace(name)] {
					v = name + "=" + modules.Redacted
				}
			case "history":
				v = history.Redact(v)
			}
			if fl.Value.Type() == "bool" {
				out = append(out, "--"+fl.Name+"="+v)
				continue
			}
			out = append(out, "--"+fl.Name, v)
		}
	})
	return append(out, rb.Path)
}

// runShard is the run's shard as the history records it.
func runShard(f *runFlags) *history.Shard {
	if f.shard == nil {
		return nil
	}
	return &history.Shard{Index: f.shard.Index, Count: f.shard.Count}
}

func (a *app) userName() string {
	for _, k := range []string{"USER", "LOGNAME"} {
		if u := a.getenv(k); u != "" {
			return u
		}
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprint(os.Getuid())
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

// lastFailed returns the hosts that failed or were unreachable in the last recorded run of
// rb, for --rerun failed.
func (a *app) lastFailed(ctx context.Context, rb *config.Runbook, f *runFlags) ([]string, error) {
	loc, err := a.historyLocation(f.comp.history, f.comp.noHistory)
	if err != nil {
		return nil, err
	}
	if loc == "" {
		return nil, fmt.Errorf("--rerun failed reads the history, and history is off")
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	store, err := history.Open(ctx, loc, history.Options{})
	if err != nil {
		return nil, fmt.Errorf("cannot open the history %s: %w", loc, err)
	}
	defer store.Close()
	key := history.RunbookKey(rb.Path)
	runs, err := store.Runs(ctx, history.Filter{Runbook: key}, 1)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("the history %s has no run of %s yet", store.Location(), key)
	}
	if last := runs[0]; last.Interrupted || last.FinishedAt.IsZero() {
		// Hosts that had not started when the run stopped left no result to rerun.
		fmt.Fprintf(a.stderr, "warning: the last run of this runbook (run %d) did not finish; hosts it had not reached are not in the history, so --rerun failed leaves them out (run without --rerun to reach them)\n", last.ID)
	}
	return store.LastFailedHosts(ctx, key)
}
