package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"go.yaml.in/yaml/v3"
)

// TestScaleDocsManifests parses the example manifests of docs/scale.md: the Kubernetes
// YAML with a YAML parser, the Nomad job with the HCL parser. It checks their syntax and
// that each states one shard count: the Job's completions and the JOB_COMPLETIONS it
// sets, the group's count and RUNBOOK_SHARD_COUNT. Nothing here runs them on a cluster.
func TestScaleDocsManifests(t *testing.T) {
	src, err := os.ReadFile("../../docs/scale.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(lang string) []string {
		var out []string
		for _, m := range regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(string(src), -1) {
			out = append(out, m[1])
		}
		return out
	}

	yamls := block("yaml")
	if len(yamls) != 1 {
		t.Fatalf("docs/scale.md has %d yaml blocks, want the one Kubernetes example", len(yamls))
	}
	dec := yaml.NewDecoder(strings.NewReader(yamls[0]))
	var kinds []string
	checkedJob := false
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("the Kubernetes example is not valid YAML: %v", err)
		}
		kind, _ := doc["kind"].(string)
		kinds = append(kinds, kind)
		if kind != "Job" {
			continue
		}
		checkedJob = true
		spec := doc["spec"].(map[string]any)
		if spec["completionMode"] != "Indexed" {
			t.Errorf("the Job's completionMode is %v, want Indexed", spec["completionMode"])
		}
		completions := spec["completions"]
		pod := spec["template"].(map[string]any)["spec"].(map[string]any)
		c := pod["containers"].([]any)[0].(map[string]any)
		found := false
		for _, e := range c["env"].([]any) {
			e := e.(map[string]any)
			if e["name"] == "JOB_COMPLETIONS" {
				found = true
				if n, err := strconv.Atoi(e["value"].(string)); err != nil || n != completions {
					t.Errorf("JOB_COMPLETIONS is %v, the Job's completions %v", e["value"], completions)
				}
			}
		}
		if !found {
			t.Error("the Job does not set JOB_COMPLETIONS")
		}
		if args := c["args"].([]any); args[0] != "check" || !strings.Contains(strings.Join(strArgs(args), " "), "--run-label $(RUN_LABEL)") {
			t.Errorf("the Job's args: %v", args)
		}
	}
	if !checkedJob || strings.Join(kinds, ",") != "ConfigMap,Secret,Secret,Job" {
		t.Errorf("the Kubernetes example holds %v", kinds)
	}

	hcls := block("hcl")
	if len(hcls) != 1 {
		t.Fatalf("docs/scale.md has %d hcl blocks, want the one Nomad job", len(hcls))
	}
	f, diags := hclparse.NewParser().ParseHCL([]byte(hcls[0]), "scale.md (nomad job)")
	if diags.HasErrors() {
		t.Fatalf("the Nomad job is not valid HCL: %s", diags.Error())
	}
	body := f.Body.(*hclsyntax.Body)
	job := only(t, body, "job")
	if v := literal(t, job.Body.Attributes["type"]); v != "batch" {
		t.Errorf("the Nomad job's type is %q", v)
	}
	group := only(t, job.Body, "group")
	count := literal(t, group.Body.Attributes["count"])
	task := only(t, group.Body, "task")
	env := only(t, task.Body, "env")
	if got := literal(t, env.Body.Attributes["RUNBOOK_SHARD_COUNT"]); got != count {
		t.Errorf("RUNBOOK_SHARD_COUNT is %q, the group's count %q", got, count)
	}
}

func strArgs(a []any) []string {
	out := make([]string, len(a))
	for i, x := range a {
		out[i], _ = x.(string)
	}
	return out
}

// only is body's one block of type typ.
func only(t *testing.T, body *hclsyntax.Body, typ string) *hclsyntax.Block {
	t.Helper()
	var found []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s blocks, want 1", len(found), typ)
	}
	return found[0]
}

// literal is an attribute's constant value as text.
func literal(t *testing.T, a *hclsyntax.Attribute) string {
	t.Helper()
	if a == nil {
		t.Fatal("attribute missing")
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("%s: %s", a.Name, diags.Error())
	}
	if v.Type().FriendlyName() == "number" {
		return v.AsBigFloat().Text('f', -1)
	}
	return v.AsString()
}
