package inventory

import (
	"strings"
	"testing"
)

// Names, keys and values from an inventory (a script's output, a CMDB field) are printed by
// --graph one per line: a newline in one cannot add a line to the tree, and controls are
// shown as escapes.
func TestGraphEscapes(t *testing.T) {
	src := `all:
  children:
    "web\n  |--@admins:":
      hosts:
        "h1\r\e]0;ok\a":
          x: "a\e[31mred\n  |  |--{ansible_become_pass = x}"
        "h2\u202eevil": {}
      vars:
        note: "line1\n  |--fakehost"
        "k\ney": {"a\nb": "c\a"}
`
	inv, diags := Parse("inv.yml", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var b strings.Builder
	if err := inv.Graph(&b, true); err != nil {
		t.Fatal(err)
	}
	want := `@all:
  |--@ungrouped:
  |--@web\n  |--@admins::
  |  |--h1\r\x1b]0;ok\x07
  |  |  |--{k\ney = {'a\nb': 'c\x07'}}
  |  |  |--{note = line1\n  |--fakehost}
  |  |  |--{x = a\x1b[31mred\n  |  |--{ansible_become_pass = x}}
  |  |--h2\u202eevil
  |  |  |--{k\ney = {'a\nb': 'c\x07'}}
  |  |  |--{note = line1\n  |--fakehost}
  |  |--{k\ney = {'a\nb': 'c\x07'}}
  |  |--{note = line1\n  |--fakehost}
`
	if got := b.String(); got != want {
		t.Errorf("Graph:\n%s\nwant:\n%s", got, want)
	}
}
