package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const patternINI = `lonely
[kvm]
kvm[01:05]
[db]
db1
kvm01
[web]
web1
db1
[edge:children]
web
[empty]
`

func patternInventory(t *testing.T) *Inventory {
	t.Helper()
	inv, diags := Parse("patterns.ini", []byte(patternINI))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return inv
}

func hostNames(hs []*Host) []string {
	out := []string{}
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func TestSelect(t *testing.T) {
	inv := patternInventory(t)
	everyone := []string{"lonely", "kvm01", "kvm02", "kvm03", "kvm04", "kvm05", "db1", "web1"}
	tests := []struct {
		pattern   string
		want      []string
		unmatched []string
		ansible   bool // also ask the real ansible
	}{
		{pattern: "all", want: everyone, ansible: true},
		{pattern: "*", want: everyone, ansible: true},
		{pattern: "kvm", want: []string{"kvm01", "kvm02", "kvm03", "kvm04", "kvm05"}},
		{pattern: "kvm03", want: []string{"kvm03"}},
		{pattern: "kvm*", want: []string{"kvm01", "kvm02", "kvm03", "kvm04", "kvm05"}},
		{pattern: "k?m0[!12345]", want: []string{}, unmatched: []string{"k?m0[!12345]"}},
		{pattern: "kvm0[!1-3]", want: []string{"kvm04", "kvm05"}, ansible: true},
		{pattern: "db:web", want: []string{"db1", "kvm01", "web1"}, ansible: true},
		{pattern: "db,web", want: []string{"db1", "kvm01", "web1"}},
		{pattern: " db , web ", want: []string{"db1", "kvm01", "web1"}},
		{pattern: "db:&web", want: []string{"db1"}, ansible: true},
		{pattern: "web:!db", want: []string{"web1"}, ansible: true},
		// Ansible applies plain terms, then &, then !, whatever the written order
		{pattern: "!db:web:&edge", want: []string{"web1"}, ansible: true},
		{pattern: "!kvm", want: []string{"lonely", "db1", "web1"}, ansible: true},
		{pattern: "&web", want: []string{"db1", "web1"}},
		{pattern: "~kvm0[12]", want: []string{"kvm01", "kvm02"}, ansible: true},
		{pattern: "~(web|db)1", want: []string{"db1", "web1"}},
		{pattern: "~kvm", want: []string{"kvm01", "kvm02", "kvm03", "kvm04", "kvm05"}},
		{pattern: "kvm[0]", want: []string{"kvm01"}, ansible: true},
		{pattern: "kvm[-1]", want: []string{"kvm05"}, ansible: true},
		{pattern: "kvm[1:2]", want: []string{"kvm02", "kvm03"}, ansible: true},
		{pattern: "kvm[3:]", want: []string{"kvm04", "kvm05"}, ansible: true},
		{pattern: "kvm[:1]", want: []string{"kvm01", "kvm02"}},
		{pattern: "kvm[9]", want: []string{}},
		{pattern: "kvm[2:9]", want: []string{"kvm03", "kvm04", "kvm05"}},
		// [digits] right after a name is a subscript, never a glob class
		{pattern: "kvm0[13]", want: []string{}, unmatched: []string{"kvm0[13]"}, ansible: true},
		{pattern: "edge", want: []string{"web1", "db1"}, ansible: true},
		{pattern: "ungrouped", want: []string{"lonely"}, ansible: true},
		{pattern: "empty", want: []string{}},
		{pattern: "nothing", want: []string{}, unmatched: []string{"nothing"}, ansible: true},
		{pattern: "db:nothing:!nobody", want: []string{"db1", "kvm01"}, unmatched: []string{"nothing", "nobody"}},
		{pattern: "kvm01:22", want: []string{}, unmatched: []string{"kvm01:22"}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			got, err := inv.Select(tt.pattern)
			if err != nil {
				t.Fatalf("Select: %v", err)
			}
			if names := hostNames(got); !reflect.DeepEqual(names, tt.want) {
				t.Errorf("Select(%q) = %v, want %v", tt.pattern, names, tt.want)
			}
			un, err := inv.Unmatched(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if len(un) != 0 || len(tt.unmatched) != 0 {
				if !reflect.DeepEqual(un, tt.unmatched) {
					t.Errorf("Unmatched(%q) = %v, want %v", tt.pattern, un, tt.unmatched)
				}
			}
		})
	}
	t.Run("ansible", func(t *testing.T) {
		if !realAnsible(t) {
			t.Skip("ansible is not installed; the expectations above were taken from it")
		}
		path := filepath.Join(t.TempDir(), "patterns.ini")
		if err := os.WriteFile(path, []byte(patternINI), 0o644); err != nil {
			t.Fatal(err)
		}
		var patterns []string
		for _, tt := range tests {
			if tt.ansible {
				patterns = append(patterns, tt.pattern)
			}
		}
		answers := ansiblePatterns(t, []string{path}, patterns)
		for _, tt := range tests {
			if !tt.ansible {
				continue
			}
			if got := answers[tt.pattern]; !reflect.DeepEqual(sortedCopy(got), sortedCopy(tt.want)) {
				t.Errorf("Ansible selects %v for %q, the table says %v", got, tt.pattern, tt.want)
			}
		}
		// and the ad-hoc command agrees with the playbook run
		for _, p := range []string{"db:&web", "kvm[1:2]"} {
			got := parseListHosts(runAnsible(t, "ansible", "-i", path, "--list-hosts", "--", p))
			if !reflect.DeepEqual(sortedCopy(got), sortedCopy(answers[p])) {
				t.Errorf("ansible %q lists %v, ansible-playbook %v", p, got, answers[p])
			}
		}
	})
}

func TestPatternErrors(t *testing.T) {
	inv := patternInventory(t)
	tests := []struct{ pattern, want string }{
		{"", "empty host pattern"},
		{" , ", "empty host pattern"},
		{"web:!", `"!" must be followed`},
		{"&", `"&" must be followed`},
		{"~(web", "invalid regular expression"},
		{"~web(?=1)", "invalid regular expression"},
		{"kvm[1-3]", "the [1-3] form was removed"},
		{"kvm0[1-3]", "write [1:3]"},
		{"kvm[3:1]", "runs backwards"},
		{"kvm[99999999999999999999]", "too large"},
	}
	for _, tt := range tests {
		err := ValidatePattern(tt.pattern)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ValidatePattern(%q) = %v, want an error containing %q", tt.pattern, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ValidatePattern(%q): error is not one line: %q", tt.pattern, err)
		}
		if _, err := inv.Select(tt.pattern); err == nil {
			t.Errorf("Select(%q) accepted a malformed pattern", tt.pattern)
		}
	}
	for _, ok := range []string{"all", "web:&db:!kvm[0]", "~.*", "kvm[0:]", "[::1]", "10.0.0.*", "web[", "a]b"} {
		if err := ValidatePattern(ok); err != nil {
			t.Errorf("ValidatePattern(%q) = %v", ok, err)
		}
	}
}
