package config

import (
	"strings"
	"testing"
)

// TestBlockStructure: a block's tasks keep their order in the play, each pointing at its
// innermost block and section; the block's tags are added to theirs and its become fills
// where neither the task nor a nearer block sets one.
func TestBlockStructure(t *testing.T) {
	rb := mustLoad(t, map[string]string{"site.hcl": `play "p" {
  hosts = "all"
  task "before" {
    command {
      cmd = "true"
    }
  }
  block "outer" {
    for_each    = ["a", "b"]
    tags        = ["outer"]
    become      = true
    become_user = "admin"
    task "o1" {
      tags = ["own"]
      command {
        cmd = "echo ${each.value} ${task["before"].rc}"
      }
    }
    block "inner" {
      for_each = [each.value, "${each.value}2"]
      when     = each.key == 0 && task["o1"].rc == 0
      become   = false
      tags     = ["inner"]
      task "i1" {
        command {
          cmd = "echo ${each.value}"
        }
      }
      rescue {
        task "i2" {
          become_user = "other"
          command {
            cmd = "echo ${each.key}"
          }
        }
      }
    }
    rescue {
      task "r1" {
        command {
          cmd = "echo ${each.value}"
        }
      }
      module "m" {
        source = "./m"
      }
    }
    always {
      task "a1" {
        command {
          cmd = "echo ${task["o1"].rc}"
        }
      }
    }
  }
  task "after" {
    command {
      cmd = "echo ${task["o1"].results["0"].rc} ${task["i1"].status}"
    }
  }
}
`, "m/main.hcl": `task "mt" {
  command {
    cmd = "true"
  }
}
`}, "site.hcl")
	p := rb.Plays[0]
	type row struct{ name, block, section, tags, become, user string }
	var got []string
	for _, task := range p.Order() {
		r := row{name: task.Name, section: task.Section, tags: strings.Join(task.Tags, ","), user: task.BecomeUser}
		if task.Block != nil {
			r.block = task.Block.Name
		}
		if task.Become != nil {
			r.become = map[bool]string{true: "become", false: "no-become"}[*task.Become]
		}
		got = append(got, strings.Join([]string{r.name, r.block, r.section, r.tags, r.become, r.user}, "|"))
	}
	want := []string{
		"before|||||",
		"o1|outer||own,outer|become|admin",
		"i1|inner||inner,outer|no-become|admin",
		"i2|inner|rescue|inner,outer|no-become|other",
		"r1|outer|rescue|outer|become|admin",
		"m.mt|m||outer|become|admin", // in the module call's block, itself in outer's rescue
		"a1|outer|always|outer|become|admin",
		"after|||||",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tasks:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	mt := p.Task("m.mt")
	if mt.Block.Parent == nil || mt.Block.Parent.Name != "outer" || mt.Block.Section != SectionRescue || mt.SectionIn(mt.Block.Parent) != SectionRescue {
		t.Errorf("m.mt is not in outer's rescue: %+v", mt.Block)
	}
	i2 := p.Task("i2")
	if outer := i2.Block.Parent; i2.Under(nil) != outer || i2.SectionIn(outer) != SectionMain || i2.SectionIn(i2.Block) != SectionRescue {
		t.Error("i2's place in outer and inner")
	}
	for _, n := range []string{"o1", "i1", "i2", "r1", "a1"} {
		if !p.Task(n).InEach() {
			t.Errorf("%s is in a block with for_each", n)
		}
	}
	for _, n := range []string{"before", "after", "m.mt"} {
		if p.Task(n).InEach() {
			t.Errorf("%s is not in a block with for_each of its instance", n)
		}
	}
}

// TestBlockErrors: the mistakes of blocks, each at its line.
func TestBlockErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		extra []string
	}{
		{
			name: "each",
			files: map[string]string{"site.hcl": `play "p" {
  hosts = "all"
  task "top" {
    command {
      cmd = "echo ${each.value}" # ERROR: Invalid reference
    }
  }
  block "plain" {
    when     = each.key == "a" # ERROR: Invalid reference
    task "in plain" {
      command {
        cmd = "echo ${each.value}" # ERROR: Invalid reference
      }
    }
  }
  block "own when" {
    for_each = ["a"]
    when     = each.value == "a" # ERROR: Invalid reference
    task "in loop" {
      command {
        cmd = "echo ${each.value}"
      }
    }
    rescue {
      task "rescue in loop" {
        command {
          cmd = "echo ${each.value}"
        }
      }
    }
  }
  module "m" {
    source = "./m"
    when   = each.key == "a" # ERROR: Invalid reference
  }
  block "bad loop" {
    for_each = each.value # ERROR: Invalid reference
    task "in bad loop" {
      command {
        cmd = "echo ${each.value}"
      }
    }
  }
  block "loop" {
    for_each = ["a"]
    module "m2" {
      source = "./m"
      when   = each.value == "a"
      vars   = { x = each.value } # ERROR: Invalid reference
    }
  }
}
`, "m/main.hcl": `variable "x" {
  default = ""
}
task "mt" {
  command {
    cmd = "echo ${each.value}" # ERROR: Invalid reference
  }
}
`},
		},
		{
			name: "references to tasks",
			files: map[string]string{"site.hcl": `play "p" {
  hosts = "all"
  task "first" {
    command {
      cmd = "true"
    }
  }
  block "b" {
    when     = task["first"].rc == 0 && task["later"].rc == 0 # ERROR: Reference to a task that has not run yet
    for_each = task["inside"].results # ERROR: Reference to a task that has not run yet
    task "inside" {
      command {
        cmd = "echo ${task["first"].rc}"
      }
    }
    block "nested" {
      when = task["inside"].rc == 0 && task["nope"].rc == 0 # ERROR: Reference to undeclared task
      task "deeper" {
        command {
          cmd = "true"
        }
      }
    }
  }
  task "later" {
    command {
      cmd = "true"
    }
  }
}
`},
		},
		{
			name: "types",
			files: map[string]string{"site.hcl": `play "p" {
  hosts = "all"
  block "b" {
    when     = "yes" # ERROR: Invalid when
    for_each = "abc" # ERROR: Invalid for_each
    task "t" {
      command {
        cmd = "true"
      }
    }
  }
  block "c" {
    for_each = null # ERROR: Invalid for_each
    when     = null # ERROR: Invalid when
    task "u" {
      when = null # ERROR: Invalid when
      command {
        cmd = "true"
      }
    }
  }
}
`},
		},
		{
			name: "depends_on",
			files: map[string]string{"site.hcl": `play "p" {
  hosts = "all"
  task "top" {
    command {
      cmd = "true"
    }
  }
  block "b" {
    task "b1" {
      depends_on = ["b2"]
      command {
        cmd = "true"
      }
    }
    task "b2" {
      depends_on = ["top"] # ERROR: Invalid dependency
      command {
        cmd = "true"
      }
    }
    rescue {
      task "r1" {
        depends_on = ["b1"] # ERROR: Invalid dependency
        command {
          cmd = "true"
        }
      }
    }
  }
  block "c" {
    task "c1" {
      depends_on = ["b1"] # ERROR: Invalid dependency
      command {
        cmd = "true"
      }
    }
  }
  task "last" {
    depends_on = ["c1"] # ERROR: Invalid dependency
    command {
      cmd = "true"
    }
  }
}
`},
		},
		{
			name: "shape",
			files: map[string]string{"site.hcl": `play "p" {
  hosts = "all"
  block "empty" { # ERROR: Empty block
  }
  block "only rescue" { # ERROR: Empty block
    rescue {
      task "r" {
        command {
          cmd = "true"
        }
      }
    }
  }
  block "" { # ERROR: Invalid block name
    task "t0" {
      command {
        cmd = "true"
      }
    }
  }
  block "twice" {
    task "t1" {
      command {
        cmd = "true"
      }
    }
    rescue {
      task "t2" {
        command {
          cmd = "true"
        }
      }
    }
    rescue { # ERROR: Duplicate rescue section
      task "t3" {
        command {
          cmd = "true"
        }
      }
    }
  }
  block "args" {
    retries = 3 # ERROR: Unsupported argument
    handler "h" { # ERROR: Unsupported block type
      command {
        cmd = "true"
      }
    }
    task "t4" {
      command {
        cmd = "true"
      }
    }
    rescue {
      when = true # ERROR: Unsupported argument
      task "t5" {
        command {
          cmd = "true"
        }
      }
    }
  }
  block "same names" {
    task "t1" { # ERROR: Duplicate task
      command {
        cmd = "true"
      }
    }
  }
  block "args" { # ERROR: Duplicate block
    task "t6" {
      command {
        cmd = "true"
      }
    }
  }
}
`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags, dir := loadTree(t, tt.files, "site.hcl", Inputs{})
			treeErrors(t, diags, dir, tt.files, tt.extra)
		})
	}
}
