package config

import (
	"os"
	"path/filepath"
	"testing"

	_ "github.com/runbook/runbook/modules/standard"
)

// FuzzParse feeds arbitrary bytes to the runbook loader: whatever the input, it must return
// diagnostics, never panic.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/errors/*.hcl")
	more, _ := filepath.Glob("../../runbooks/*/*.hcl")
	examples, _ := filepath.Glob("../../runbooks/examples/*.hcl")
	for _, name := range append(append(seeds, more...), examples...) {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`play "x" { hosts = "all" task "t" { command { cmd = "true" } } }`))
	f.Add([]byte(`variable "v" { type = map(object({a=optional(string, "x")})) default = {} }`))
	f.Add([]byte(`locals { a = local.a }`))
	f.Add([]byte("play \"\" {\n hosts = \"a:&b:!c\"\n serial = [1, \"10%\"]\n}"))
	f.Fuzz(func(t *testing.T, src []byte) {
		rb, diags := Parse([]Source{{Name: "fuzz.hcl", Src: src}}, Inputs{AllowMissing: true})
		if rb == nil && !diags.HasErrors() {
			t.Fatal("no runbook and no error")
		}
	})
}
