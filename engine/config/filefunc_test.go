package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileDefault: file("PATH") in a variable's default reads a file relative to the
// runbook; the value is sensitive when the variable is; errors name the path and never the
// content.
func TestFileDefault(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o755)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("secrets/db.txt", []byte("File-s3cret-pw\n"))
	write("big.txt", []byte(strings.Repeat("File-s3cret-pw", maxFileFunc/10)))
	write("bin.dat", []byte{0xff, 0xfe, 'F', 'i', 'l', 'e'})
	abs := filepath.Join(dir, "secrets", "db.txt")
	tests := []struct {
		name      string
		decl      string
		want      string
		sensitive bool
		err       string
	}{
		{name: "sensitive, trimmed", decl: `sensitive = true
  default = trimspace(file("secrets/db.txt"))`, want: "File-s3cret-pw", sensitive: true},
		{name: "chomp", decl: `sensitive = true
  default = chomp(file("secrets/db.txt"))`, want: "File-s3cret-pw", sensitive: true},
		{name: "as it is, not sensitive", decl: `default = file("secrets/db.txt")`, want: "File-s3cret-pw\n"},
		{name: "absolute", decl: `sensitive = true
  default = file("` + abs + `")`, want: "File-s3cret-pw\n", sensitive: true},
		{name: "missing", decl: `default = file("secrets/nope.txt")`, err: "no such file"},
		{name: "directory", decl: `default = file("secrets")`, err: "not a regular file"},
		{name: "too large", decl: `sensitive = true
  default = file("big.txt")`, err: "larger than 1024 KiB"},
		{name: "not text", decl: `default = file("bin.dat")`, err: "not UTF-8"},
		{name: "wrong type", decl: `type = number
  sensitive = true
  default = file("secrets/db.txt")`, err: "does not match the variable's type"},
		{name: "other functions still refused", decl: `default = upper("x")`, err: "upper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "variable \"pw\" {\n  " + tt.decl + "\n}\nplay \"p\" {\n  hosts = \"all\"\n  task \"t\" {\n    command {\n      argv = [\"true\"]\n    }\n  }\n}\n"
			rb, diags := Parse([]Source{{Name: filepath.Join(dir, "site.hcl"), Src: []byte(src)}}, Inputs{})
			if tt.err != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.err) {
					t.Fatalf("diags %v, want %q", diags, tt.err)
				}
				if strings.Contains(diags.Error(), "s3cret") {
					t.Fatalf("the error shows the file's content: %s", diags.Error())
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			v := rb.varValues["pw"]
			if v.HasMark(Sensitive) != tt.sensitive {
				t.Errorf("marked %v, want %v", v.HasMark(Sensitive), tt.sensitive)
			}
			if u, _ := v.Unmark(); u.AsString() != tt.want {
				t.Errorf("value %q, want %q", u.AsString(), tt.want)
			}
		})
	}
}
