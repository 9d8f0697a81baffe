package main

import (
	"bytes"
	"testing"

	"github.com/runbook/runbook/cmd/runbook/cli"
)

// TestRepoRunbooksFormatted keeps the shipped runbooks in canonical layout and valid.
func TestRepoRunbooksFormatted(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cli.Run([]string{"fmt", "--check", "../../runbooks"}, nil, &out, &errb, nil); code != 0 {
		t.Fatalf("runbook fmt --check runbooks exited %d; not formatted:\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := cli.Run([]string{"validate", "../../runbooks/bigip-ve-kvm"}, nil, &out, &errb, nil); code != 0 {
		t.Fatalf("validate exited %d:\n%s", code, errb.String())
	}
}
