package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNeighEntries(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text string
		want       int
	}{
		{"arp", "entries  allocs   destroys\n000001ed 000031db 00003ded\n000001ed 00003544 0000291a\n", 0x1ed},
		{"zero", "entries  allocs\n00000000 00000001\n", 0},
		{"header only", "entries  allocs\n", -1},
		{"not hex", "entries\nzz\n", -1},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := neighEntries(p); got != tc.want {
			t.Errorf("%s: neighEntries = %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := neighEntries(filepath.Join(dir, "missing")); got != -1 {
		t.Errorf("missing file: %d", got)
	}
}

func TestForwarderPID(t *testing.T) {
	for _, tc := range []struct {
		state string
		want  int
	}{
		{`{"owner": {"pid": 7, "start": 1}, "forwarder": {"pid": 4242, "start": 99}, "hosts": []}`, 4242},
		{"{\n  \"forwarder\": {\n    \"pid\": 31337,\n    \"start\": 5\n  }\n}", 31337},
		{`{"owner": {"pid": 7}}`, 0},
		{`not json`, 0},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(tc.state), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := forwarderPID(dir); got != tc.want {
			t.Errorf("forwarderPID(%q) = %d, want %d", tc.state, got, tc.want)
		}
	}
}

func TestCheckRecap(t *testing.T) {
	ok := "  lab001  ok=8 changed=0 drift=0 failed=0 unreachable=0 skipped=0\n"
	quiet := "  998 more hosts with nothing to report (ok=7984 skipped=0 in all)\n"
	if err := checkRecap(ok+ok+quiet, 1000); err != nil {
		t.Errorf("1000 hosts all ok: %v", err)
	}
	if err := checkRecap(ok+quiet, 1000); err == nil {
		t.Error("999 hosts ok taken for 1000")
	}
	bad := "  lab002  ok=7 changed=0 drift=0 failed=1 unreachable=0 skipped=0\n"
	if err := checkRecap(ok+bad, 2); err == nil {
		t.Error("a failed host taken for ok")
	}
}
