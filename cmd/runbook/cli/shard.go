package cli

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/engine/plan"
)

// The environment a scheduler gives a shard of a fleet run (docs/scale.md). Kubernetes sets
// JOB_COMPLETION_INDEX in every pod of an Indexed Job, but not the count: the manifest sets
// JOB_COMPLETIONS to its spec.completions. Nomad sets NOMAD_ALLOC_INDEX in every
// allocation; the job sets the count, RUNBOOK_SHARD_COUNT, to its group's count.
const (
	envJobIndex    = "JOB_COMPLETION_INDEX"
	envJobCount    = "JOB_COMPLETIONS"
	envNomadIndex  = "NOMAD_ALLOC_INDEX"
	envShardCount  = "RUNBOOK_SHARD_COUNT"
	maxRunLabelLen = 128
)

// setString is a string flag that knows whether it was given at all: --shard "" and
// --run-label "" are errors, not "no shard" and "no label".
type setString struct {
	value, typ string
	set        bool
}

func (s *setString) String() string { return s.value }
func (s *setString) Type() string   { return s.typ }
func (s *setString) Set(v string) error {
	s.value, s.set = v, true
	return nil
}

func addShardFlag(cmd *cobra.Command, f *runFlags) {
	f.shardFlag.typ = "INDEX/COUNT"
	cmd.Flags().Var(&f.shardFlag, "shard", "run only this shard of the hosts, INDEX/COUNT from 0 (e.g. 2/4): the hosts whose name's FNV-1a hash mod COUNT is INDEX, after --limit "+
		"(default: $"+envJobIndex+" with $"+envJobCount+", or $"+envNomadIndex+" with $"+envShardCount+"; see docs/scale.md)")
}

// lookupenv is getenv that tells an unset variable from an empty one.
func (a *app) lookupenv(name string) (string, bool) {
	for _, kv := range a.env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// resolveShard sets f.shard from --shard, else from the scheduler's environment, and says
// where it came from in f.shardFrom. A value that no run can use is an error before
// anything is read or touched: a shard that guessed would run some hosts twice and others
// never.
func (a *app) resolveShard(f *runFlags) *hcl.Diagnostic {
	if f.shardFlag.set {
		s, err := plan.ParseShard(f.shardFlag.value)
		if err != nil {
			return diag.Errorf("Invalid --shard", "--shard: %s.", err)
		}
		f.shard, f.shardFrom = &s, "--shard"
		return nil
	}
	jobIndex, hasJobIndex := a.lookupenv(envJobIndex)
	jobCount, hasJobCount := a.lookupenv(envJobCount)
	_, hasNomadIndex := a.lookupenv(envNomadIndex)
	nomadCount, hasNomadCount := a.lookupenv(envShardCount)
	k8s := hasJobIndex || hasJobCount
	switch {
	case k8s && hasNomadCount:
		return diag.Errorf("Invalid shard environment", "Both %s/%s (a Kubernetes Indexed Job) and %s (Nomad) are set: "+
			"unset one, or name the shard with --shard INDEX/COUNT.", envJobIndex, envJobCount, envShardCount)
	case hasJobIndex != hasJobCount:
		set, unset := envJobIndex, envJobCount
		if hasJobCount {
			set, unset = envJobCount, envJobIndex
		}
		return diag.Errorf("Invalid shard environment", "%s is set but %s is not: a shard needs both its index and the count. "+
			"Kubernetes sets %s in the pods of an Indexed Job but not the count: set %s in the manifest to the Job's spec.completions, "+
			"or pass --shard \"$%s/COUNT\" (--shard 0/1 runs every host).", set, unset, envJobIndex, envJobCount, envJobIndex)
	case k8s:
		return a.envShard(f, envJobIndex, jobIndex, envJobCount, jobCount)
	case hasNomadCount:
		if !hasNomadIndex {
			return diag.Errorf("Invalid shard environment", "%s is set but %s is not: the index comes from Nomad's %s "+
				"(a Nomad allocation has it), or from --shard INDEX/COUNT.", envShardCount, envNomadIndex, envNomadIndex)
		}
		nomadIndex, _ := a.lookupenv(envNomadIndex)
		return a.envShard(f, envNomadIndex, nomadIndex, envShardCount, nomadCount)
	}
	// NOMAD_ALLOC_INDEX alone is in every Nomad allocation, sharded or not: without a
	// count it means nothing here.
	return nil
}

// envShard reads a shard from an index and a count variable.
func (a *app) envShard(f *runFlags, iName, iVal, nName, nVal string) *hcl.Diagnostic {
	i, err := plan.ShardNumber(iName, iVal)
	if err != nil {
		return diag.Errorf("Invalid shard environment", "%s.", err)
	}
	n, err := plan.ShardNumber(nName, nVal)
	if err != nil {
		return diag.Errorf("Invalid shard environment", "%s.", err)
	}
	s := plan.Shard{Index: i, Count: n}
	if err := s.Check(); err != nil {
		return diag.Errorf("Invalid shard environment", "%s=%s, %s=%s: %s.", iName, iVal, nName, nVal, err)
	}
	f.shard, f.shardFrom = &s, "$"+iName+"/$"+nName
	return nil
}

// checkRunLabel refuses a --run-label that cannot be shown safely: empty, longer than
// maxRunLabelLen bytes, not UTF-8, or with a character that is not printable (control
// characters, line breaks, tabs, format characters that reorder text).
func checkRunLabel(label string) error {
	switch {
	case label == "":
		return fmt.Errorf("--run-label is empty")
	case len(label) > maxRunLabelLen:
		return fmt.Errorf("--run-label is %d bytes long; at most %d", len(label), maxRunLabelLen)
	case !utf8.ValidString(label):
		return fmt.Errorf("--run-label is not valid UTF-8")
	}
	for _, r := range label {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("--run-label holds the character %U, which is not printable; use letters, digits, punctuation and spaces", r)
		}
	}
	return nil
}

// shardCounts is what --list says of a shard: the hosts it runs of those the run selects.
func shardCounts(sharded, all *plan.Plan) (mine, total int) {
	count := func(pl *plan.Plan) int {
		seen := map[string]bool{}
		if pl != nil {
			for _, p := range pl.Plays {
				for _, h := range p.Hosts {
					seen[h.Name] = true
				}
			}
		}
		return len(seen)
	}
	return count(sharded), count(all)
}
