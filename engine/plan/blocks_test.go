package plan

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/inventory"
)

const blockSrc = `
play "p" {
  hosts = "all"
  task "first" {
    command {
      cmd = "true"
    }
  }
  block "b" {
    tags = ["blk"]
    task "t" {
      command {
        cmd = "true"
      }
    }
    task "u" {
      tags = ["u"]
      command {
        cmd = "true"
      }
    }
    rescue {
      task "fix" {
        tags = ["repair"]
        command {
          cmd = "true"
        }
      }
    }
    always {
      task "log" {
        tags = ["logging"]
        command {
          cmd = "true"
        }
      }
    }
  }
  task "last" {
    command {
      cmd = "true"
    }
  }
}
`

// TestBlockSelection: a block with a selected task keeps its rescue and always tasks; a
// rescue task, which runs only when a task of its block fails, is refused as --task or
// --start-at-task, and --tags that select it without any of its block's tasks say it will
// not run.
func TestBlockSelection(t *testing.T) {
	rb, diags := config.Parse([]config.Source{{Name: "b.hcl", Src: []byte(blockSrc)}}, config.Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	iv, idiags := inventory.Parse("inv.hcl", []byte(`host "h" {
  address = "127.0.0.1"
}`))
	if idiags.HasErrors() {
		t.Fatal(idiags)
	}
	tests := []struct {
		name  string
		opts  Options
		tasks string // selected, in order
		err   string // the error's summary and a part of its detail
		warn  string
	}{
		{name: "all", tasks: "first t u fix log last"},
		{name: "a main task keeps rescue and always", opts: Options{Task: "u"}, tasks: "u fix log"},
		{name: "block tags", opts: Options{Tags: []string{"blk"}}, tasks: "t u fix log"},
		{name: "skip always", opts: Options{Tags: []string{"blk"}, SkipTags: []string{"logging"}}, tasks: "t u fix"},
		{name: "start in the block", opts: Options{StartAt: "u"}, tasks: "u fix log last"},
		{name: "always alone", opts: Options{Task: "log"}, tasks: "log"},
		{name: "start at always", opts: Options{StartAt: "log"}, tasks: "log last"},
		{name: "rescue as --task", opts: Options{Task: "fix"}, err: `Invalid --task: "fix" is in the rescue of block "b"`},
		{name: "rescue as --start-at-task", opts: Options{StartAt: "fix"}, err: `Invalid --start-at-task: "fix" is in the rescue of block "b"`},
		{name: "rescue by tag alone", opts: Options{Tags: []string{"repair"}}, tasks: "fix",
			warn: `Rescue task will not run: The selection (--tags, --skip-tags) takes "fix", in the rescue of block "b"`},
		{name: "main skipped", opts: Options{SkipTags: []string{"blk"}}, tasks: "first last"},
		{name: "rescue kept, main skipped", opts: Options{SkipTags: []string{"u"}, Tags: []string{"repair", "logging"}}, tasks: "fix log",
			warn: `takes "fix", in the rescue of block "b", but no task of the block's main part`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, diags := Build(rb, iv, tt.opts)
			text := func(sev hcl.DiagnosticSeverity) string {
				var out []string
				for _, d := range diags {
					if d.Severity == sev {
						out = append(out, d.Summary+": "+d.Detail)
					}
				}
				return strings.Join(out, "\n")
			}
			if tt.err != "" {
				if !strings.Contains(text(hcl.DiagError), tt.err) {
					t.Errorf("errors %q, want %q", text(hcl.DiagError), tt.err)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if w := text(hcl.DiagWarning); (tt.warn == "") != (w == "") || !strings.Contains(w, tt.warn) {
				t.Errorf("warnings %q, want %q", w, tt.warn)
			}
			var names []string
			for _, task := range pl.Plays[0].Tasks {
				names = append(names, task.Name)
			}
			if got := strings.Join(names, " "); got != tt.tasks {
				t.Errorf("tasks %q, want %q", got, tt.tasks)
			}
		})
	}
}
