package protocol

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runbook/runbook/modules"
	_ "github.com/runbook/runbook/modules/standard"
)

var jsonFence = regexp.MustCompile("(?s)```json\n(.*?)```")

// TestDocsMessages decodes every message shown in docs/helper.md with the decoder its
// kind uses, so the protocol's documentation cannot drift from the code.
func TestDocsMessages(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "docs", "helper.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range jsonFence.FindAllSubmatch(src, -1) {
		for _, line := range strings.Split(strings.TrimSpace(string(m[1])), "\n") {
			n++
			switch {
			case strings.Contains(line, `"type":"hello"`):
				h, err := DecodeHello([]byte(line))
				if err != nil {
					t.Errorf("%s: %v", line, err)
					continue
				}
				// The documented module list is what the helper really offers.
				var want []string
				for _, name := range modules.Names() {
					if d, _ := modules.Lookup(name); d != nil && d.RunsOnHost() {
						want = append(want, name)
					}
				}
				if strings.Join(h.Modules, ",") != strings.Join(want, ",") {
					t.Errorf("docs list modules %v, the helper has %v", h.Modules, want)
				}
			case strings.Contains(line, `"op":`):
				if _, err := DecodeRequest([]byte(line)); err != nil {
					t.Errorf("%s: %v", line, err)
				}
			default:
				if _, err := DecodeResponse([]byte(line)); err != nil {
					t.Errorf("%s: %v", line, err)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("found only %d messages in docs/helper.md", n)
	}
}
