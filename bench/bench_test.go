package bench

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/runbook/runbook/cmd/runbook/cli"
)

func TestSiteHCLValidates(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := cli.Run([]string{"validate", "site.hcl"}, nil, &out, &errb, []string{"NO_COLOR=1"}); rc != 0 {
		t.Fatalf("runbook validate site.hcl: exit %d\n%s%s", rc, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if rc := cli.Run([]string{"fmt", "--check", "site.hcl"}, nil, &out, &errb, []string{"NO_COLOR=1"}); rc != 0 {
		t.Fatalf("runbook fmt --check site.hcl: exit %d\n%s%s", rc, out.String(), errb.String())
	}
}

// The playbook parses and has the same eight tasks, by name and in order, as the runbook.
func TestSiteYMLMatchesRunbook(t *testing.T) {
	b, err := os.ReadFile("site.yml")
	if err != nil {
		t.Fatal(err)
	}
	var plays []struct {
		Hosts       string `yaml:"hosts"`
		GatherFacts bool   `yaml:"gather_facts"`
		Tasks       []struct {
			Name string `yaml:"name"`
		} `yaml:"tasks"`
	}
	if err := yaml.Unmarshal(b, &plays); err != nil {
		t.Fatalf("site.yml: %v", err)
	}
	if len(plays) != 1 || plays[0].Hosts != "all" || plays[0].GatherFacts {
		t.Fatalf("site.yml: want one play on all hosts without fact gathering, got %+v", plays)
	}
	var yml []string
	for _, task := range plays[0].Tasks {
		yml = append(yml, task.Name)
	}
	h, err := os.ReadFile("site.hcl")
	if err != nil {
		t.Fatal(err)
	}
	var hcl []string
	for _, m := range regexp.MustCompile(`(?m)^\s*task "([^"]+)"`).FindAllSubmatch(h, -1) {
		hcl = append(hcl, string(m[1]))
	}
	if len(hcl) != 8 || !slices.Equal(hcl, yml) {
		t.Fatalf("tasks differ:\nsite.hcl: %q\nsite.yml: %q", hcl, yml)
	}
}
