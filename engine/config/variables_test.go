package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

const varsRunbook = `
variable "mtu" {
  type    = number
  default = 1500
}
variable "nics" {
  type    = list(string)
  default = []
}
variable "name" {
  type = string
}
variable "token" {
  type      = string
  sensitive = true
  default   = "s3cret"
}
variable "bond" {
  type    = object({ mode = string, miimon = optional(number, 100) })
  default = { mode = "802.3ad" }
}
variable "vlan" {
  type    = number
  default = 10
  validation {
    condition     = var.vlan >= 1 && var.vlan <= 4094
    error_message = "A VLAN id is between 1 and 4094."
  }
}
play "p" {
  hosts = "all"
  task "t" {
    command {
      cmd = "echo ${var.mtu} ${var.name}"
    }
  }
}
`

func TestVariablePrecedence(t *testing.T) {
	dir := t.TempDir()
	file1 := filepath.Join(dir, "a.hcl")
	file2 := filepath.Join(dir, "b.hcl")
	os.WriteFile(file1, []byte("mtu = 9000\nname = \"from-file1\"\n"), 0o644)
	os.WriteFile(file2, []byte("mtu = 9100\n"), 0o644)

	tests := []struct {
		name    string
		in      Inputs
		want    map[string]cty.Value
		wantErr string
	}{
		{name: "defaults", in: Inputs{Vars: []string{"name=x"}},
			want: map[string]cty.Value{"mtu": cty.NumberIntVal(1500), "name": cty.StringVal("x")}},
		{name: "env over default", in: Inputs{Environ: []string{"RUNBOOK_VAR_mtu=9000", "RUNBOOK_VAR_name=env", "UNRELATED=1", "RUNBOOK_VAR_nope=1"}},
			want: map[string]cty.Value{"mtu": cty.NumberIntVal(9000), "name": cty.StringVal("env")}},
		{name: "files in order over env", in: Inputs{VarFiles: []string{file1, file2}, Environ: []string{"RUNBOOK_VAR_mtu=1"}},
			want: map[string]cty.Value{"mtu": cty.NumberIntVal(9100), "name": cty.StringVal("from-file1")}},
		{name: "flags over files, last flag wins", in: Inputs{VarFiles: []string{file1}, Vars: []string{"mtu=1280", "mtu=9216"}},
			want: map[string]cty.Value{"mtu": cty.NumberIntVal(9216), "name": cty.StringVal("from-file1")}},
		{name: "list from a flag is HCL", in: Inputs{Vars: []string{"name=x", `nics=["ens1f0","ens1f1"]`}},
			want: map[string]cty.Value{"nics": cty.ListVal([]cty.Value{cty.StringVal("ens1f0"), cty.StringVal("ens1f1")})}},
		{name: "string flag is taken as is", in: Inputs{Vars: []string{`name=a "quoted" = value`}},
			want: map[string]cty.Value{"name": cty.StringVal(`a "quoted" = value`)}},
		{name: "optional attribute default", in: Inputs{Vars: []string{"name=x", `bond={mode="active-backup"}`}},
			want: map[string]cty.Value{"bond": cty.ObjectVal(map[string]cty.Value{"mode": cty.StringVal("active-backup"), "miimon": cty.NumberIntVal(100)})}},
		{name: "missing required", in: Inputs{}, wantErr: "No value for required variable"},
		{name: "missing allowed in validate", in: Inputs{AllowMissing: true},
			want: map[string]cty.Value{"name": cty.UnknownVal(cty.String)}},
		{name: "wrong type", in: Inputs{Vars: []string{"name=x", "mtu=jumbo"}}, wantErr: "is not a number"},
		{name: "wrong type from file", in: Inputs{Vars: []string{"name=x", `nics={a=1}`}}, wantErr: "Invalid value for variable"},
		{name: "undeclared flag", in: Inputs{Vars: []string{"name=x", "mut=1"}}, wantErr: "Value for undeclared variable"},
		{name: "malformed flag", in: Inputs{Vars: []string{"name"}}, wantErr: "Invalid --var option"},
		{name: "validation rule", in: Inputs{Vars: []string{"name=x", "vlan=5000"}}, wantErr: "Invalid value for variable"},
		{name: "missing file", in: Inputs{Vars: []string{"name=x"}, VarFiles: []string{filepath.Join(dir, "nope.hcl")}}, wantErr: "Cannot read variables file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb, diags := Parse([]Source{{Name: "vars.hcl", Src: []byte(varsRunbook)}}, tt.in)
			if tt.wantErr != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("diags = %v, want an error %q", diags, tt.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			for name, want := range tt.want {
				got := rb.varValues[name]
				if !got.RawEquals(want) {
					t.Errorf("var.%s = %#v, want %#v", name, got, want)
				}
			}
		})
	}
}

func TestSensitiveVariableIsMarked(t *testing.T) {
	rb, diags := Parse([]Source{{Name: "vars.hcl", Src: []byte(varsRunbook)}}, Inputs{Vars: []string{"name=x"}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !rb.varValues["token"].HasMark(Sensitive) {
		t.Error("var.token is not marked sensitive")
	}
	if rb.varValues["name"].HasMark(Sensitive) {
		t.Error("var.name is marked sensitive")
	}
}

func TestUndeclaredVarInFileWarns(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "v.hcl")
	os.WriteFile(f, []byte("name = \"x\"\nmut = 1\n"), 0o644)
	_, diags := Parse([]Source{{Name: "vars.hcl", Src: []byte(varsRunbook)}}, Inputs{VarFiles: []string{f}})
	if diags.HasErrors() || len(diags) != 1 || !strings.Contains(diags[0].Detail, `Did you mean "mtu"?`) {
		t.Fatalf("diags = %v", diags)
	}
	if diags[0].Subject == nil || diags[0].Subject.Start.Line != 2 {
		t.Errorf("warning at %v, want line 2 of the file", diags[0].Subject)
	}
}
