package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/engine/view"
	"github.com/runbook/runbook/modules"
)

// runFlags are the flags shared by exec, check and run.
type runFlags struct {
	vars     varFlags
	inv      []string
	limit    string
	tags     []string
	skipTags []string
	task     string
	check    bool
	diff     bool
	forks    int

	quiet          bool
	verbose        bool
	strategy       string
	startAt        string
	withDeps       bool
	forceHandlers  bool
	rerun          string
	list           bool
	sshConfig      string
	askBecomePass  bool
	connectTimeout time.Duration
	connectRetries int
	keepalive      time.Duration
	hostTimeout    time.Duration
	confirmTimeout time.Duration
	noPipelining   bool
	maxPushes      int
	maxStartups    int
	verifyHelper   string

	shardFlag setString   // --shard as given
	shard     *plan.Shard // the shard of this run (resolveShard), nil for all hosts
	shardFrom string      // where the shard came from, for messages

	comp complianceFlags // exec and check: history and metrics
}

func (f *runFlags) add(cmd *cobra.Command, withVars bool) {
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.inv, "inventory", "i", nil, "inventory: an HCL, INI or YAML file, an executable, or a directory (repeatable)")
	inventoryTimeoutFlag(cmd)
	fl.StringVarP(&f.limit, "limit", "l", "", "further limit the hosts with a pattern (e.g. 'kvm*:!kvm03')")
	fl.BoolVar(&f.diff, "diff", false, "show before/after differences of what changes (or would change)")
	fl.IntVarP(&f.forks, "forks", "f", 50, "how many hosts run at once")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "show only failed and unreachable results, then the recap")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "show every result, ok and skipped too, and every host in the recap")
	fl.StringVar(&f.strategy, "strategy", "free", "how hosts move through a play's tasks: free (each host runs on) or linear (all hosts finish a task before the next); a play's strategy wins")
	fl.BoolVar(&f.list, "list", false, "print the hosts and tasks that would run, and connect to nothing")
	fl.StringVarP(&f.sshConfig, "ssh-config", "F", "", "OpenSSH client config file (default ~/.ssh/config and /etc/ssh/ssh_config)")
	fl.BoolVarP(&f.askBecomePass, "ask-become-pass", "K", false, "ask once for the sudo password (read from standard input without a terminal)")
	fl.DurationVar(&f.connectTimeout, "connect-timeout", 0, "bound on connecting to one host (default 30s, or ssh_config's ConnectTimeout)")
	fl.IntVar(&f.connectRetries, "connect-retries", 2, "how many times to try a host again whose connection is reset or closed before login (a busy sshd's MaxStartups), with a growing jittered wait, all within --connect-timeout; never after login")
	fl.DurationVar(&f.keepalive, "keepalive", 15*time.Second, "interval of SSH keepalives; a host that misses 3 is unreachable")
	fl.DurationVar(&f.hostTimeout, "host-timeout", 0, "bound on everything one host does in one play (0: none)")
	fl.BoolVar(&f.noPipelining, "no-pipelining", false, "send each host its next task only after the one before answered (by default a run of tasks that do not read each other's results is sent at once, and the host runs them in order, stopping at a failure)")
	fl.IntVar(&f.maxStartups, "max-startups", 0, "how many connections are set up at once (TCP, key exchange, login; 0: no limit); a connection's --connect-timeout starts when its turn comes, and one taking over 5s lets the next start")
	fl.IntVar(&f.maxPushes, "max-pushes", 32, "how many hosts are sent the helper at once, when it is missing there (0: no limit); a push's time starts when its turn comes")
	fl.DurationVar(&f.confirmTimeout, "confirm-timeout", 60*time.Second, "how long a network change waits, armed to roll back by itself, for its confirmation over a new connection, in tasks that set no confirm_timeout (0: no transaction)")
	fl.StringVar(&f.verifyHelper, "verify-helper", "stamp", "how each start verifies the helper's file on a host: stamp (hash it, and later skip the hash while the file is provably the one hashed: same inode, size and ctime, for a day, without become) or always (hash it every time)")
	addShardFlag(cmd, f)
	if withVars {
		f.vars.add(cmd)
		fl.StringSliceVarP(&f.tags, "tags", "t", nil, "run only tasks with one of these tags")
		fl.StringSliceVar(&f.skipTags, "skip-tags", nil, "skip tasks with any of these tags")
		fl.StringVar(&f.task, "task", "", "run only the task of this name")
		fl.BoolVar(&f.withDeps, "with-deps", false, "with --task: also run the tasks it depends on")
		fl.StringVar(&f.startAt, "start-at-task", "", "skip every task before the first task of this name")
		fl.BoolVar(&f.forceHandlers, "force-handlers", false, "run notified handlers on a host even after a task failed there")
	}
	_ = cmd.MarkFlagRequired("inventory")
}

func (a *app) execCmd(name string) *cobra.Command {
	var f runFlags
	short, long := "Run a runbook against the hosts of an inventory", `Connects to every host the runbook's plays select, pushes the helper when it is missing, and
runs the tasks in order on each host (many hosts at once, --forks). With --check, nothing is
changed: every task reports whether the host is in sync or drifts, with a diff.`
	if name == "check" {
		short, long = "Check hosts against a runbook without changing them (exec --check)", `Runs the runbook in check mode: nothing on the hosts is changed. Each task reports whether the
host is in sync or drifts, with a diff. Exit code 4 means drift was found.`
	}
	cmd := &cobra.Command{
		Use:   name + " [flags] RUNBOOK -i INVENTORY",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "check" {
				f.check = true
			}
			if err := a.checkFlags(&f); err != nil {
				return err
			}
			keys, kd := a.vaultKeyring(cmd, true)
			if kd != nil {
				a.report(nil, hcl.Diagnostics{kd})
				return fail(ExitInvalid)
			}
			in := f.vars.inputs(a.env, false)
			in.Vault = keys
			rb, diags := config.Load(args[0], in)
			files := map[string]*hcl.File{}
			if rb != nil {
				files = rb.Files
			}
			if diags.HasErrors() {
				a.report(files, diags)
				return fail(ExitInvalid)
			}
			return a.plan(cmd, rb, &f, diags)
		},
	}
	f.add(cmd, true)
	f.comp.add(cmd)
	cmd.Flags().StringVar(&f.rerun, "rerun", "", "\"failed\": run only on the hosts that failed or were unreachable in the last recorded run of this runbook")
	if name == "exec" {
		cmd.Flags().BoolVarP(&f.check, "check", "C", false, "check only: change nothing, report drift (exit 4 when found)")
	}
	a.outputFlag(cmd, string(view.KindHuman), string(view.KindJSON), string(view.KindJUnit))
	return cmd
}

// checkFlags refuses flag values that no run can use, before anything is read or touched;
// exec, check and run share it.
func (a *app) checkFlags(f *runFlags) error {
	d := a.resolveShard(f)
	if d == nil && f.comp.label.set {
		if err := checkRunLabel(f.comp.label.value); err != nil {
			d = diag.Errorf("Invalid --run-label", "%s.", err)
		}
	}
	switch {
	case d != nil:
	case f.forks < 1:
		d = diag.Errorf("Invalid --forks", "--forks must be at least 1, not %d.", f.forks)
	case f.maxStartups < 0:
		d = diag.Errorf("Invalid --max-startups", "--max-startups must be 0 (no limit) or more, not %d.", f.maxStartups)
	case f.maxPushes < 0:
		d = diag.Errorf("Invalid --max-pushes", "--max-pushes must be 0 (no limit) or more, not %d.", f.maxPushes)
	case f.connectRetries < 0:
		d = diag.Errorf("Invalid --connect-retries", "--connect-retries must be 0 (one try) or more, not %d.", f.connectRetries)
	case f.strategy != config.StrategyFree && f.strategy != config.StrategyLinear:
		d = diag.Errorf("Invalid --strategy", "--strategy is %q or %q, not %q.", config.StrategyFree, config.StrategyLinear, f.strategy)
	case f.rerun != "" && f.rerun != "failed":
		d = diag.Errorf("Invalid --rerun", "--rerun takes \"failed\" (the hosts that failed or were unreachable in the last run of this runbook), not %q.", f.rerun)
	case f.verifyHelper != "stamp" && f.verifyHelper != "always":
		d = diag.Errorf("Invalid --verify-helper", "--verify-helper is \"stamp\" or \"always\", not %q.", f.verifyHelper)
	default:
		return nil
	}
	a.report(nil, hcl.Diagnostics{d})
	return fail(ExitInvalid)
}

func (a *app) runCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] -i INVENTORY PATTERN MODULE [ARG=VALUE...]",
		Short: "Run one module ad hoc on the hosts a pattern selects",
		Long: `Runs a single module on the hosts that PATTERN selects, through the same path as exec.
Arguments are ARG=VALUE; a string argument takes VALUE as it is, any other type reads VALUE as
an HCL expression (e.g. mtu=9100, slaves='["ens1f0","ens1f1"]', enabled=false).

  runbook run -i lab/inventory.hcl all command cmd='cat /proc/loadavg'`,
		Args: cobra.MinimumNArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return modules.Names(), cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkFlags(&f); err != nil {
				return err
			}
			src, diags := adHocRunbook(args[0], args[1], args[2:])
			if diags.HasErrors() {
				a.report(nil, diags)
				return fail(ExitInvalid)
			}
			rb, diags := config.Parse([]config.Source{{Name: "ad-hoc.hcl", Src: src}}, config.Inputs{})
			if diags.HasErrors() {
				a.report(rb.Files, diags)
				return fail(ExitInvalid)
			}
			rb.Dir = "."
			return a.plan(cmd, rb, &f, diags)
		},
	}
	f.add(cmd, false)
	cmd.Flags().BoolVarP(&f.check, "check", "C", false, "check only: change nothing, report drift (exit 4 when found)")
	a.outputFlag(cmd, string(view.KindHuman), string(view.KindJSON), string(view.KindJUnit))
	return cmd
}

// adHocRunbook writes the runbook that `runbook run` executes: one play, one task.
func adHocRunbook(pattern, module string, kvs []string) ([]byte, hcl.Diagnostics) {
	m, ok := modules.Lookup(module)
	if !ok {
		detail := fmt.Sprintf("There is no module named %q.", module)
		if s := modules.Suggest(module, modules.Names()); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		return nil, hcl.Diagnostics{diag.Errorf("Unknown module", "%s Run `runbook modules` to list them.", detail)}
	}
	schema := m.Info().Schema
	f := hclwrite.NewEmptyFile()
	play := f.Body().AppendNewBlock("play", []string{"ad-hoc"}).Body()
	play.SetAttributeValue("hosts", cty.StringVal(pattern))
	body := play.AppendNewBlock("task", []string{module}).Body().AppendNewBlock(module, nil).Body()
	var diags hcl.Diagnostics
	seen := map[string]bool{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || !hclsyntax.ValidIdentifier(k) {
			diags = append(diags, diag.Errorf("Invalid module argument", "%q is not of the form ARG=VALUE.", kv))
			continue
		}
		if seen[k] {
			diags = append(diags, diag.Errorf("Duplicate module argument", "%s is given twice.", k))
			continue
		}
		seen[k] = true
		arg, known := schema.Arg(k)
		if !known {
			var names []string
			for _, a := range schema.Args {
				names = append(names, a.Name)
			}
			sort.Strings(names)
			detail := fmt.Sprintf("The %s module has no argument %q.", module, k)
			if s := modules.Suggest(k, names); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			diags = append(diags, diag.Errorf("Unsupported argument", "%s It takes: %s.", detail, strings.Join(names, ", ")))
			continue
		}
		if arg.Type == cty.String {
			body.SetAttributeValue(k, cty.StringVal(v))
			continue
		}
		body.SetAttributeRaw(k, hclwrite.Tokens{{Type: hclsyntax.TokenIdent, Bytes: []byte(v)}})
	}
	return f.Bytes(), diags
}
