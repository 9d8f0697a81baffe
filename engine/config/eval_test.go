package config

import (
	"testing"

	"github.com/zclconf/go-cty/cty"
)

const evalRunbook = `
variable "mtu" {
  default = 9100
}
play "p" {
  hosts = "all"
  vars = {
    nics     = try(host.vars.data_nics, [])
    hostname = "${host.name}.lab"
  }
  task "probe" {
    command {
      cmd = "uname -r"
    }
  }
  task "mtu" {
    for_each = toset(host.vars.nics)
    when     = each.value != "skip" && task["probe"].rc == 0
    command {
      argv = ["ip", "link", "set", "dev", each.value, "mtu", tostring(var.mtu)]
    }
  }
  task "map" {
    for_each = { b = 2, a = 1 }
    command {
      cmd = "echo ${each.key}=${each.value}"
    }
  }
}
`

func TestPerHostEvaluation(t *testing.T) {
	rb, diags := Parse([]Source{{Name: "e.hcl", Src: []byte(evalRunbook)}}, Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p := rb.Plays[0]
	inv := cty.ObjectVal(map[string]cty.Value{
		"data_nics": cty.TupleVal([]cty.Value{cty.StringVal("ens1f1"), cty.StringVal("ens1f0"), cty.StringVal("skip")}),
		"hostname":  cty.StringVal("from-inventory"),
	})
	vars, diags := rb.HostVars(p, "kvm01", []string{"all", "kvm"}, inv)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := vars.GetAttr("hostname").AsString(); got != "kvm01.lab" {
		t.Errorf("play var should override the inventory's: hostname = %q", got)
	}
	scope := Scope{Host: "kvm01", Groups: []string{"all", "kvm"}, Vars: vars,
		Tasks: map[string]cty.Value{"probe": cty.ObjectVal(map[string]cty.Value{"rc": cty.NumberIntVal(0)})}}
	mtu := p.Task("mtu")
	items, diags := mtu.Items(rb.EvalContext(scope))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var ran []string
	for _, it := range items {
		s := scope
		s.Each = &it
		ctx := rb.EvalContext(s)
		ok, diags := mtu.WhenTrue(ctx)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if !ok {
			continue
		}
		_, args, diags := mtu.Args(ctx)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		argv := args.GetAttr("argv").AsValueSlice()
		ran = append(ran, argv[4].AsString()+"="+argv[6].AsString())
	}
	if want := []string{"ens1f0=9100", "ens1f1=9100"}; len(ran) != 2 || ran[0] != want[0] || ran[1] != want[1] {
		t.Errorf("ran %v, want %v", ran, want)
	}

	items, _ = p.Task("map").Items(rb.EvalContext(scope))
	if len(items) != 2 || items[0].Key.AsString() != "a" || items[1].Key.AsString() != "b" {
		t.Errorf("map items not sorted by key: %v", items)
	}

	// A for_each that is not a collection for this host is a per-host error, not a crash.
	bad := scope
	bad.Vars = cty.ObjectVal(map[string]cty.Value{"nics": cty.NumberIntVal(5)})
	if _, diags := mtu.Items(rb.EvalContext(bad)); !diags.HasErrors() {
		t.Error("for_each over a number: no error")
	}
}
