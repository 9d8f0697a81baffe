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
	// The two roots of the bigip-hypervisor module (runbooks/modules), which validate checks
	// through their calls.
	for _, root := range []string{"../../runbooks/bigip-ve-kvm", "../../runbooks/bigip-ve-sites"} {
		out.Reset()
		errb.Reset()
		if code := cli.Run([]string{"validate", root}, nil, &out, &errb, nil); code != 0 {
			t.Fatalf("validate %s exited %d:\n%s", root, code, errb.String())
		}
	}
}
