package run

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/plan"
)

// newLabTree is newLab for a runbook of several files (site.hcl and the module directories
// it calls), written to a temporary directory.
func newLabTree(t *testing.T, files map[string]string, hosts ...string) *lab {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rb, diags := config.Load(filepath.Join(dir, "site.hcl"), config.Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	l := newLab(t, `play "p" {
  hosts = "all"
}`, hosts...)
	l.rb = rb
	return l
}

// ran lists the commands (argv[0]) a fake host ran, in order.
func ran(h *fakeHost) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.ran {
		if cmd, _, ok := strings.Cut(r, " as "); ok && !strings.HasPrefix(r, "facts ") {
			out = append(out, cmd)
		}
	}
	return out
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// msgOf returns the message of the result "host task[item]".
func msgOf(rec *recorder, host, task, item string) string {
	for _, r := range rec.results {
		if r.Host == host && r.Task == task && r.Item == item {
			return r.Msg
		}
	}
	return "(no result)"
}

// TestBlockWhenFalse: a block whose when is false on a host reports every task of it,
// rescue and always ones too, skipped there; the host goes on.
func TestBlockWhenFalse(t *testing.T) {
	l := newLab(t, `play "p" {
  hosts = "kvm"
  block "b" {
    when = host.name == "a"
    task "t" {
      command {
        argv = ["false"]
      }
    }
    rescue {
      task "r" {
        command {
          argv = ["fix"]
        }
      }
    }
    always {
      task "al" {
        command {
          argv = ["log"]
        }
      }
    }
  }
  task "after" {
    command {
      argv = ["after"]
    }
  }
}`, "a", "b")
	recap, rec := l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{
		"a t failed", "a r changed", "a b ok", "a al changed", "a after changed",
		"b t skipped", "b r skipped", "b al skipped", "b after changed",
	})
	if m := msgOf(rec, "b", "r", ""); m != `skipped: the when of block "b" is false` {
		t.Errorf("skip message %q", m)
	}
	same(t, "b ran", ran(l.conn.hosts["b"]), []string{"after"})
	if s := recap.Hosts["a"]; s.Failed != 0 || s.Rescued != 1 || recap.ExitCode() != ExitOK {
		t.Errorf("a: %+v, exit %d", *s, recap.ExitCode())
	}
}

// TestBlockForEach: a block with for_each runs its tasks per element, in order, labelled
// with the element's key; during an element task["x"] is that element's result, after the
// block it gathers every element's.
func TestBlockForEach(t *testing.T) {
	l := newLab(t, `play "p" {
  hosts = "kvm"
  block "b" {
    for_each = { x = "1", y = "2" }
    task "t" {
      command {
        argv = ["t-${each.key}-${each.value}"]
      }
    }
    task "u" {
      command {
        argv = ["u-${each.key}-${task["t"].rc}-${task["t"].stdout}"]
      }
    }
  }
  task "after" {
    command {
      argv = ["after-${task["t"].status}-${length(keys(task["t"].results))}-${task["t"].results["y"].stdout}-${task["u"].changed}"]
    }
  }
}`, "a")
	_, rec := l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{"a t[x] changed", "a u[x] changed", "a t[y] changed", "a u[y] changed", "a after changed"})
	same(t, "ran", ran(l.conn.hosts["a"]), []string{"t-x-1", "u-x-0-hello", "t-y-2", "u-y-0-hello", "after-changed-2-hello-true"})
}

const rescueRunbook = `play "p" {
  hosts = "kvm"
  block "b" {
    for_each = ["a", "b", "c"]
    task "work" {
      command {
        argv = [each.value == "b" ? "false" : "work-${each.value}"]
      }
    }
    task "more" {
      command {
        argv = ["more-${each.value}"]
      }
    }
    rescue {
      task "fix" {
        command {
          argv = [%s]
        }
      }
    }
    always {
      task "log" {
        command {
          argv = ["log-${each.value}"]
        }
      }
    }
  }
  task "after" {
    command {
      argv = ["after"]
    }
  }
}`

// TestBlockRescue: a task of an element fails; the rescue runs for that element. When it
// succeeds, the failure is taken back (the host is ok, Rescued counts it, exit 0) and the
// block goes on with the next element; when it fails, the host stops after always.
func TestBlockRescue(t *testing.T) {
	t.Run("succeeds", func(t *testing.T) {
		l := newLab(t, strings.Replace(rescueRunbook, "%s", `"fix-${each.value}"`, 1), "h")
		recap, rec := l.run(false, plan.Options{})
		same(t, "ran", ran(l.conn.hosts["h"]), []string{
			"work-a", "more-a", "log-a",
			"false", "fix-b", "log-b",
			"work-c", "more-c", "log-c",
			"after",
		})
		s := recap.Hosts["h"]
		if s.Failed != 0 || s.Rescued != 1 || s.Changed != 9 || recap.ExitCode() != ExitOK {
			t.Errorf("stats %+v, exit %d; %v", *s, recap.ExitCode(), rec.lines())
		}
		// the failure is still shown as it happened
		eq(t, rec.lines(), []string{"h work[0] changed", "h more[0] changed", "h log[0] changed",
			"h work[1] failed", "h fix[1] changed", "h b[1] ok", "h log[1] changed",
			"h work[2] changed", "h more[2] changed", "h log[2] changed", "h after changed"})
	})
	t.Run("fails", func(t *testing.T) {
		l := newLab(t, strings.Replace(rescueRunbook, "%s", `"false"`, 1), "h")
		recap, rec := l.run(false, plan.Options{})
		same(t, "ran", ran(l.conn.hosts["h"]), []string{"work-a", "more-a", "log-a", "false", "false", "log-b"})
		s := recap.Hosts["h"]
		if s.Failed != 2 || s.Rescued != 0 || recap.ExitCode() != ExitFailed {
			t.Errorf("stats %+v, exit %d; %v", *s, recap.ExitCode(), rec.lines())
		}
	})
	t.Run("no rescue", func(t *testing.T) {
		src := strings.Replace(rescueRunbook, "%s", `"x"`, 1)
		src = src[:strings.Index(src, "    rescue {")] + src[strings.Index(src, "    always {"):]
		l := newLab(t, src, "h")
		recap, _ := l.run(false, plan.Options{})
		same(t, "ran", ran(l.conn.hosts["h"]), []string{"work-a", "more-a", "log-a", "false", "log-b"})
		if s := recap.Hosts["h"]; s.Failed != 1 || recap.ExitCode() != ExitFailed {
			t.Errorf("stats %+v", *s)
		}
	})
	t.Run("always fails after a rescue", func(t *testing.T) {
		src := strings.Replace(rescueRunbook, "%s", `"fix"`, 1)
		src = strings.Replace(src, `"log-${each.value}"`, `each.value == "b" ? "false" : "log"`, 1)
		l := newLab(t, src, "h")
		recap, _ := l.run(false, plan.Options{})
		same(t, "ran", ran(l.conn.hosts["h"]), []string{"work-a", "more-a", "log", "false", "fix", "false"})
		if s := recap.Hosts["h"]; s.Failed != 1 || s.Rescued != 1 || recap.ExitCode() != ExitFailed {
			t.Errorf("stats %+v", *s)
		}
	})
}

// TestBlockContinueAndUnreachable: a task with on_failure = "continue" does not trigger the
// rescue (the host goes on, and counts as failed); an unreachable host runs nothing more,
// no rescue, no always.
func TestBlockContinueAndUnreachable(t *testing.T) {
	src := `play "p" {
  hosts = "kvm"
  block "b" {
    task "soft" {
      on_failure = "continue"
      command {
        argv = ["false"]
      }
    }
    task "drops" {
      command {
        argv = [host.name == "gone" ? "drop" : "next"]
      }
    }
    rescue {
      task "fix" {
        command {
          argv = ["fix"]
        }
      }
    }
    always {
      task "log" {
        command {
          argv = ["log"]
        }
      }
    }
  }
  task "after" {
    command {
      argv = ["after"]
    }
  }
}`
	l := newLab(t, src, "h", "gone")
	recap, rec := l.run(false, plan.Options{})
	same(t, "h ran", ran(l.conn.hosts["h"]), []string{"false", "next", "log", "after"})
	same(t, "gone ran", ran(l.conn.hosts["gone"]), []string{"false", "drop"})
	eq(t, rec.lines(), []string{"h soft failed", "h drops changed", "h log changed", "h after changed",
		"gone soft failed", "gone drops unreachable"})
	if s := recap.Hosts["h"]; s.Failed != 1 || s.Rescued != 0 {
		t.Errorf("h: %+v", *s)
	}
	if s := recap.Hosts["gone"]; s.Unreachable != 1 || s.Rescued != 0 {
		t.Errorf("gone: %+v", *s)
	}
}

// TestNestedBlocks: an inner block's for_each sees the outer's each and shadows it inside;
// results are labelled "outer/inner"; after the inner block each is the outer's again. An
// inner rescue that succeeds keeps the outer's rescue from running.
func TestNestedBlocks(t *testing.T) {
	l := newLab(t, `play "p" {
  hosts = "kvm"
  block "outer" {
    for_each = { a = "A", b = "B" }
    block "inner" {
      for_each = [each.key, "z"]
      task "in" {
        command {
          argv = [each.value == "z" && each.key == 1 && false ? "never" : "in-${each.key}-${each.value}"]
        }
      }
      task "maybe" {
        command {
          argv = [each.value == "b" ? "false" : "ok-${each.value}"]
        }
      }
      rescue {
        task "inner fix" {
          command {
            argv = ["ifix-${each.value}"]
          }
        }
      }
    }
    task "out" {
      command {
        argv = ["out-${each.key}-${each.value}-${length(keys(task["in"].results))}"]
      }
    }
    rescue {
      task "outer fix" {
        command {
          argv = ["ofix"]
        }
      }
    }
  }
}`, "h")
	recap, rec := l.run(false, plan.Options{})
	same(t, "ran", ran(l.conn.hosts["h"]), []string{
		"in-0-a", "ok-a", "in-1-z", "ok-z", "out-a-A-2",
		"in-0-b", "false", "ifix-b", "in-1-z", "ok-z", "out-b-B-2",
	})
	eq(t, rec.lines(), []string{
		"h in[a/0] changed", "h maybe[a/0] changed", "h in[a/1] changed", "h maybe[a/1] changed", "h out[a] changed",
		"h in[b/0] changed", "h maybe[b/0] failed", "h inner fix[b/0] changed", "h inner[b/0] ok", "h in[b/1] changed", "h maybe[b/1] changed", "h out[b] changed",
	})
	if s := recap.Hosts["h"]; s.Failed != 0 || s.Rescued != 1 || recap.ExitCode() != ExitOK {
		t.Errorf("stats %+v", *s)
	}
}

// TestBlockLinear: under the linear strategy a top-level block is one step: two hosts that
// run a different number of elements in it do not wait for each other inside it, and meet
// after it.
func TestBlockLinear(t *testing.T) {
	l := newLab(t, `play "p" {
  hosts    = "kvm"
  strategy = "linear"
  task "first" {
    command {
      argv = ["first"]
    }
  }
  block "b" {
    for_each = host.name == "a" ? [1, 2, 3] : [1]
    task "t" {
      command {
        argv = ["t${each.value}"]
      }
    }
    block "inner" {
      when = each.value != 2
      task "u" {
        command {
          argv = ["u"]
        }
      }
    }
  }
  task "last" {
    command {
      argv = ["last"]
    }
  }
}`, "a", "b")
	log := &globalLog{}
	for name, h := range l.conn.hosts {
		h.name, h.log = name, log
	}
	pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e := &Engine{Runbook: l.rb, Connector: l.conn, Observer: &recorder{}, Options: Options{Forks: 1}}
	done := make(chan *Recap)
	go func() { done <- e.Run(context.Background(), pl) }()
	select {
	case recap := <-done:
		if code := recap.ExitCode(); code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the run did not finish (deadlock); events so far:\n%s", strings.Join(log.events, "\n"))
	}
	same(t, "a ran", ran(l.conn.hosts["a"]), []string{"first", "t1", "u", "t2", "t3", "u", "last"})
	same(t, "b ran", ran(l.conn.hosts["b"]), []string{"first", "t1", "u", "last"})
	// the hosts meet between top-level steps: no "last" before every host's block ended
	lastBlock, firstLast := -1, len(log.events)
	for i, ev := range log.events {
		if strings.HasSuffix(ev, " last start") && i < firstLast {
			firstLast = i
		}
		if strings.Contains(ev, " t") || strings.HasSuffix(ev, " u end") {
			lastBlock = i
		}
	}
	if firstLast < lastBlock {
		t.Errorf("a host ran last before the other finished the block:\n%s", strings.Join(log.events, "\n"))
	}
}

// TestBlockRunOnce: run_once in a block with for_each runs once per element, on one host;
// the other hosts take its result.
func TestBlockRunOnce(t *testing.T) {
	l := newLab(t, `play "p" {
  hosts = "kvm"
  block "b" {
    for_each = ["x", "y"]
    task "once" {
      run_once = true
      command {
        argv = ["once-${each.value}"]
      }
    }
    task "each" {
      command {
        argv = ["each-${each.value}-${task["once"].stdout}"]
      }
    }
  }
}`, "a", "b", "c")
	recap, rec := l.run(false, plan.Options{})
	count := map[string]int{}
	for _, h := range l.conn.hosts {
		for _, r := range ran(h) {
			count[r]++
		}
	}
	if count["once-x"] != 1 || count["once-y"] != 1 || count["each-x-hello"] != 3 || count["each-y-hello"] != 3 {
		t.Errorf("commands run: %v\n%v", count, rec.lines())
	}
	if recap.ExitCode() != ExitOK {
		t.Errorf("exit %d: %v", recap.ExitCode(), rec.lines())
	}
}

const callerModule = `variable "who" {
  type = string
}
task "hello" {
  notify = ["bye"]
  command {
    argv = ["hello-${var.who}"]
  }
}
task "again" {
  command {
    argv = ["again-${task["hello"].stdout}"]
  }
}
handler "bye" {
  command {
    argv = ["bye-${var.who}"]
  }
}
output "said" {
  value = "${var.who}:${task["hello"].stdout}"
}
`

// TestModuleRun: a module's tasks run in place of the call, under qualified names; the
// caller sees their results as task["call.x"] and the module's outputs as module.call.x;
// the module's handlers run when its tasks notify them; a call's when skips its tasks.
func TestModuleRun(t *testing.T) {
	l := newLabTree(t, map[string]string{
		"m/main.hcl": callerModule,
		"site.hcl": `play "p" {
  hosts = "kvm"
  module "one" {
    source = "./m"
    vars   = { who = "one" }
  }
  module "sites" {
    source   = "./m"
    for_each = { east = "e", west = "w" }
    vars     = { who = each.value }
    when     = each.key == "east" || host.name == "b"
  }
  task "after" {
    command {
      argv = ["after-${module.one.said}-${task["one.again"].stdout}-${module.sites["east"].said}"]
    }
  }
}`}, "a", "b")
	recap, rec := l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{
		"a one.hello changed", "a one.again changed", `a sites["east"].hello changed`, `a sites["east"].again changed`,
		`a sites["west"].hello skipped`, `a sites["west"].again skipped`, "a after changed",
		"a one.bye changed", `a sites["east"].bye changed`,
		"b one.hello changed", "b one.again changed", `b sites["east"].hello changed`, `b sites["east"].again changed`,
		`b sites["west"].hello changed`, `b sites["west"].again changed`, "b after changed",
		"b one.bye changed", `b sites["east"].bye changed`, `b sites["west"].bye changed`,
	})
	same(t, "a ran", ran(l.conn.hosts["a"]), []string{"hello-one", "again-hello", "hello-e", "again-hello",
		"after-one:hello-hello-e:hello", "bye-one", "bye-e"})
	if m := msgOf(rec, "a", `sites["west"].hello`, ""); m != `skipped: the when of module call sites["west"] is false` {
		t.Errorf("skip message %q", m)
	}
	if recap.ExitCode() != ExitOK {
		t.Errorf("exit %d", recap.ExitCode())
	}
}

// TestModuleSelection: --task names a module's task by its qualified name; --tags selects
// the tasks of a block whose tags it names, with the block's rescue and always tasks.
func TestModuleSelection(t *testing.T) {
	l := newLabTree(t, map[string]string{
		"m/main.hcl": callerModule,
		"site.hcl": `play "p" {
  hosts = "kvm"
  module "one" {
    source = "./m"
    vars   = { who = "one" }
  }
  block "b" {
    tags = ["blk"]
    task "t" {
      command {
        argv = ["false"]
      }
    }
    rescue {
      task "r" {
        command {
          argv = ["r"]
        }
      }
    }
  }
  block "c" {
    task "in c" {
      tags = ["c"]
      command {
        argv = ["c"]
      }
    }
    always {
      task "c always" {
        command {
          argv = ["ca"]
        }
      }
    }
  }
}`}, "a")
	_, rec := l.run(false, plan.Options{Task: "one.hello"})
	eq(t, rec.lines(), []string{"a one.hello changed", "a one.bye changed"})
	_, rec = l.run(false, plan.Options{Tags: []string{"blk"}})
	eq(t, rec.lines(), []string{"a t failed", "a r changed", "a b ok"})
	_, rec = l.run(false, plan.Options{Tags: []string{"c"}})
	eq(t, rec.lines(), []string{"a in c changed", "a c always changed"})
}

// TestBlockSoftFailureCounts: a task that fails with on_failure = "continue" in one element
// of a block with for_each leaves the host failed at the end of the play, as it does outside
// a block, whatever the later elements do: the next play leaves the host alone.
func TestBlockSoftFailureCounts(t *testing.T) {
	for _, tt := range []struct{ name, forEach string }{
		{"outside a block", ""},
		{"first element", `for_each = ["bad", "good"]`},
		{"last element", `for_each = ["good", "bad"]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			each := `"bad"`
			if tt.forEach != "" {
				each = "each.value"
			}
			l := newLab(t, `play "one" {
  hosts = "kvm"
  block "b" {
    `+tt.forEach+`
    task "soft" {
      on_failure = "continue"
      command {
        argv = [`+each+` == "bad" ? "false" : "fine"]
      }
    }
  }
}
play "two" {
  hosts = "kvm"
  task "next" {
    command {
      argv = ["next"]
    }
  }
}`, "h")
			recap, rec := l.run(false, plan.Options{})
			for _, line := range rec.lines() {
				if strings.Contains(line, "next") {
					t.Errorf("the next play ran on a host that failed: %v", rec.lines())
				}
			}
			if recap.ExitCode() != ExitFailed {
				t.Errorf("exit %d", recap.ExitCode())
			}
		})
	}
}

// TestRescueSoftFailureStays: a rescue takes back the failures of the block's tasks, not
// those of its own tasks that failed with on_failure = "continue": such a failure counts, and
// the host is failed, as it would be anywhere else.
func TestRescueSoftFailureStays(t *testing.T) {
	l := newLab(t, `play "one" {
  hosts = "kvm"
  block "b" {
    task "breaks" {
      command {
        argv = ["false"]
      }
    }
    rescue {
      task "soft" {
        on_failure = "continue"
        command {
          argv = ["false"]
        }
      }
      task "fix" {
        command {
          argv = ["fix"]
        }
      }
    }
  }
}
play "two" {
  hosts = "kvm"
  task "next" {
    command {
      argv = ["next"]
    }
  }
}`, "h")
	recap, rec := l.run(false, plan.Options{})
	s := recap.Hosts["h"]
	if s.Failed != 1 || s.Rescued != 1 || recap.ExitCode() != ExitFailed {
		t.Errorf("stats %+v, exit %d; %v", *s, recap.ExitCode(), rec.lines())
	}
	same(t, "ran", ran(l.conn.hosts["h"]), []string{"false", "false", "fix"})
}

// TestBlockForEachSensitive: the elements of a sensitive collection are not shown as the
// labels of a block's results, nor in their messages.
func TestBlockForEachSensitive(t *testing.T) {
	l := newLab(t, `variable "tokens" {
  default   = { alpha-secret = "s3cr3t-one", beta-secret = "s3cr3t-two" }
  sensitive = true
}
play "p" {
  hosts = "kvm"
  block "b" {
    for_each = var.tokens
    task "use" {
      command {
        argv = ["false", each.key, each.value]
      }
    }
    rescue {
      task "fix" {
        command {
          argv = ["fix", each.value]
        }
      }
    }
  }
}`, "h")
	recap, rec := l.run(false, plan.Options{})
	all := strings.Join(rec.lines(), "\n")
	for _, r := range rec.results {
		all += fmt.Sprintf("\n%+v", r)
	}
	if strings.Contains(all, "secret") || strings.Contains(all, "s3cr3t") {
		t.Errorf("a secret in the results:\n%s", all)
	}
	eq(t, rec.lines(), []string{"h use[(sensitive value #1)] failed", "h fix[(sensitive value #1)] changed", "h b[(sensitive value #1)] ok",
		"h use[(sensitive value #2)] failed", "h fix[(sensitive value #2)] changed", "h b[(sensitive value #2)] ok"})
	if s := recap.Hosts["h"]; s.Rescued != 2 || s.Failed != 0 {
		t.Errorf("stats %+v", *s)
	}
}

// TestSkippedBlockResults: the tasks of a block or a module call whose when is false, or of
// a block whose for_each is empty, are skipped as a task whose own when is false: later
// tasks see task["x"] with status "skipped".
func TestSkippedBlockResults(t *testing.T) {
	l := newLabTree(t, map[string]string{
		"m/main.hcl": callerModule,
		"site.hcl": `play "p" {
  hosts = "kvm"
  block "b" {
    when = host.name == "a"
    task "t" {
      command {
        argv = ["t"]
      }
    }
  }
  block "empty" {
    for_each = host.name == "a" ? ["x"] : []
    task "e" {
      command {
        argv = ["e"]
      }
    }
  }
  module "one" {
    source = "./m"
    vars   = { who = "one" }
    when   = host.name == "a"
  }
  task "after" {
    command {
      argv = ["after-${task["t"].status}-${task["e"].status}-${task["one.hello"].skipped}"]
    }
  }
}`}, "a", "b")
	recap, rec := l.run(false, plan.Options{})
	same(t, "b ran", ran(l.conn.hosts["b"]), []string{"after-skipped-skipped-true"})
	same(t, "a ran", ran(l.conn.hosts["a"]), []string{"t", "e", "hello-one", "again-hello", "after-changed-changed-false", "bye-one"})
	if recap.ExitCode() != ExitOK {
		t.Errorf("exit %d: %v", recap.ExitCode(), rec.lines())
	}
}

// TestBlockFacts: a block whose when or for_each reads facts gets them gathered first, once.
func TestBlockFacts(t *testing.T) {
	l := newLab(t, `play "p" {
  hosts = "kvm"
  block "debian only" {
    when = facts.os.id == "debian"
    task "apt" {
      command {
        argv = ["apt"]
      }
    }
  }
  block "per os" {
    for_each = [facts.os.id, "x"]
    task "os" {
      command {
        argv = ["os-${each.value}"]
      }
    }
  }
}`, "deb", "rh")
	l.conn.hosts["rh"].osID = "rhel"
	recap, rec := l.run(false, plan.Options{})
	same(t, "deb ran", ran(l.conn.hosts["deb"]), []string{"apt", "os-debian", "os-x"})
	same(t, "rh ran", ran(l.conn.hosts["rh"]), []string{"os-rhel", "os-x"})
	for _, h := range []string{"deb", "rh"} {
		if n := strings.Count(strings.Join(l.conn.hosts[h].calls, ","), "facts"); n != 1 {
			t.Errorf("%s: facts gathered %d times", h, n)
		}
	}
	if recap.ExitCode() != ExitOK {
		t.Errorf("exit %d: %v", recap.ExitCode(), rec.lines())
	}
}

// lostFacts is a connector whose hosts drop the connection when asked for facts.
type lostFacts struct{ *fakeConnector }

func (c lostFacts) Connect(ctx context.Context, to Endpoint) (Connection, error) {
	conn, err := c.fakeConnector.Connect(ctx, to)
	if err != nil {
		return nil, err
	}
	return lostFactsConn{conn}, nil
}

type lostFactsConn struct{ Connection }

func (c lostFactsConn) Executor(ctx context.Context, id Identity) (Executor, error) {
	x, err := c.Connection.Executor(ctx, id)
	if err != nil {
		return nil, err
	}
	return lostFactsExec{x.(fakeExec)}, nil
}

type lostFactsExec struct{ fakeExec }

func (lostFactsExec) Facts(context.Context) (map[string]any, error) {
	return nil, fmt.Errorf("%w: connection to fake lost: EOF", ErrUnreachable)
}

// TestBlockFactsUnreachable: a host that drops off while its facts are gathered for a
// block's when is reported unreachable, as for a task's.
func TestBlockFactsUnreachable(t *testing.T) {
	for _, tt := range []struct{ name, src string }{
		{"task", `task "t" {
    when = facts.os.id == "debian"
    command {
      argv = ["t"]
    }
  }`},
		{"block", `block "b" {
    when = facts.os.id == "debian"
    task "t" {
      command {
        argv = ["t"]
      }
    }
  }`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, `play "p" {
  hosts = "kvm"
  task "first" {
    command {
      argv = ["first"]
    }
  }
  `+tt.src+`
}`, "h")
			pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			rec := &recorder{}
			e := &Engine{Runbook: l.rb, Connector: lostFacts{l.conn}, Observer: rec, Options: Options{Forks: 1}}
			recap := e.Run(context.Background(), pl)
			if s := recap.Hosts["h"]; s.Unreachable != 1 || recap.ExitCode() != ExitUnreachable {
				t.Errorf("stats %+v, exit %d: %v", *s, recap.ExitCode(), rec.lines())
			}
		})
	}
}

// TestModuleOutputNotKnown: an output that cannot be evaluated on a host (here, its task
// was skipped there) fails the task that reads it, saying that a module output may be why.
func TestModuleOutputNotKnown(t *testing.T) {
	l := newLabTree(t, map[string]string{
		"m/main.hcl": callerModule,
		"site.hcl": `play "p" {
  hosts = "kvm"
  module "one" {
    source = "./m"
    vars   = { who = "one" }
    when   = host.name == "a"
  }
  task "after" {
    command {
      argv = ["after-${module.one.said}"]
    }
  }
}`}, "a", "b")
	recap, rec := l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{"a one.hello changed", "a one.again changed", "a after changed", "a one.bye changed",
		"b one.hello skipped", "b one.again skipped", "b after failed"})
	if m := msgOf(rec, "b", "after", ""); !strings.Contains(m, "a module output that could not be evaluated here") {
		t.Errorf("message %q", m)
	}
	if recap.ExitCode() != ExitFailed {
		t.Errorf("exit %d", recap.ExitCode())
	}
}
