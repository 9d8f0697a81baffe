package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine/diag"
)

var hclFence = regexp.MustCompile("(?s)```hcl\n(.*?)```")

// TestDocsExamples loads every ```hcl example in docs/*.md that is a whole runbook (it has a
// play block), so the docs never show a runbook that does not load.
func TestDocsExamples(t *testing.T) {
	docs, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	n := 0
	for _, doc := range docs {
		src, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range hclFence.FindAllSubmatch(src, -1) {
			if !regexp.MustCompile(`(?m)^play "`).Match(m[1]) {
				continue
			}
			n++
			// Named as a file of runbooks/examples, so that a module call's source reads
			// as it would there ("./reuse/baseline").
			name := filepath.Join("..", "..", "runbooks", "examples", filepath.Base(doc)+"#"+string(rune('a'+i))+".hcl")
			rb, diags := Parse([]Source{{Name: name, Src: m[1]}}, Inputs{AllowMissing: true})
			if len(diags) > 0 {
				var b strings.Builder
				(&diag.Printer{Files: rb.Files}).Text(&b, diags)
				t.Errorf("%s:\n%s", name, b.String())
			}
		}
	}
	if n < 3 {
		t.Errorf("found only %d runnable examples in docs/", n)
	}
}
