package plan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/inventory"
	_ "github.com/runbook/runbook/modules/standard"
)

const src = `
play "p" {
  hosts = "kvm:!kvm03"
  task "a" {
    tags = ["net"]
    command {
      cmd = "a"
    }
  }
  task "b" {
    tags = ["always"]
    command {
      cmd = "b"
    }
  }
  task "c" {
    tags       = ["net", "slow"]
    depends_on = ["a"]
    command {
      cmd = "c"
    }
  }
  task "d" {
    command {
      cmd = "d"
    }
  }
}
`

const inv = `
host "kvm[01:04]" {
  address = "127.0.0.1"
}
group "kvm" {
  hosts = ["kvm[01:04]"]
}
`

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	limitFile := filepath.Join(dir, "retry")
	if err := os.WriteFile(limitFile, []byte("# failed last time\nkvm04\n\nkvm01\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad")
	if err := os.WriteFile(badFile, []byte("kvm01\nkvm5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rb, diags := config.Parse([]config.Source{{Name: "t.hcl", Src: []byte(src)}}, config.Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	iv, diags := inventory.Parse("inv.hcl", []byte(inv))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tests := []struct {
		name       string
		opts       Options
		hosts      string
		tasks      string
		wantErr    string
		wantDetail string
	}{
		{name: "everything", hosts: "kvm01 kvm02 kvm04", tasks: "a b c d"},
		{name: "tags keep always", opts: Options{Tags: []string{"net"}}, hosts: "kvm01 kvm02 kvm04", tasks: "a b c"},
		{name: "skip tags win", opts: Options{Tags: []string{"net"}, SkipTags: []string{"slow"}}, hosts: "kvm01 kvm02 kvm04", tasks: "a b"},
		{name: "skip always", opts: Options{SkipTags: []string{"always"}}, hosts: "kvm01 kvm02 kvm04", tasks: "a c d"},
		{name: "one task", opts: Options{Task: "c"}, hosts: "kvm01 kvm02 kvm04", tasks: "c"},
		{name: "limit", opts: Options{Limit: "kvm:!kvm01"}, hosts: "kvm02 kvm04", tasks: "a b c d"},
		{name: "limit by name", opts: Options{Limit: "kvm02,kvm03"}, hosts: "kvm02", tasks: "a b c d"},
		{name: "one task with its dependencies", opts: Options{Task: "c", WithDeps: true}, hosts: "kvm01 kvm02 kvm04", tasks: "a c"},
		{name: "with-deps needs a task", opts: Options{WithDeps: true}, wantErr: "Invalid flags"},
		{name: "start at", opts: Options{StartAt: "c"}, hosts: "kvm01 kvm02 kvm04", tasks: "c d"},
		{name: "start at, with tags", opts: Options{StartAt: "b", Tags: []string{"net"}}, hosts: "kvm01 kvm02 kvm04", tasks: "b c"},
		{name: "start at an unknown task", opts: Options{StartAt: "cc"}, wantErr: "Unknown task", wantDetail: `--start-at-task names "cc"`},
		{name: "limit from a file", opts: Options{Limit: "@" + limitFile}, hosts: "kvm01 kvm04", tasks: "a b c d"},
		{name: "limit file with an unknown host", opts: Options{Limit: "@" + badFile}, wantErr: "Invalid --limit", wantDetail: `"kvm5" (did you mean "kvm01"?)`},
		{name: "missing limit file", opts: Options{Limit: "@" + filepath.Join(dir, "nope")}, wantErr: "Invalid --limit", wantDetail: "no such file"},
		{name: "unknown tag", opts: Options{Tags: []string{"nett"}}, wantErr: "Unknown tag", wantDetail: `Did you mean "net"?`},
		{name: "unknown task", opts: Options{Task: "e"}, wantErr: "Unknown task"},
		{name: "limit matches nothing", opts: Options{Limit: "web*"}, wantErr: "No hosts match --limit"},
		{name: "bad limit", opts: Options{Limit: "~("}, wantErr: "Invalid --limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, diags := Build(rb, iv, tt.opts)
			if tt.wantErr != "" {
				if !diags.HasErrors() || diags[0].Summary != tt.wantErr || !strings.Contains(diags[0].Detail, tt.wantDetail) {
					t.Fatalf("diags = %v, want %q", diags, tt.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var hosts, tasks []string
			for _, h := range pl.Plays[0].Hosts {
				hosts = append(hosts, h.Name)
			}
			for _, task := range pl.Plays[0].Tasks {
				tasks = append(tasks, task.Name)
			}
			if got := strings.Join(hosts, " "); got != tt.hosts {
				t.Errorf("hosts = %q, want %q", got, tt.hosts)
			}
			if got := strings.Join(tasks, " "); got != tt.tasks {
				t.Errorf("tasks = %q, want %q", got, tt.tasks)
			}
		})
	}
}
