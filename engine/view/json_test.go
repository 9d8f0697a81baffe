package view

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	if err := feed(&JSON{W: &b}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines", len(lines))
	}
	var first, failed, recap map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[2]), &failed)
	json.Unmarshal([]byte(lines[5]), &recap)
	if first["type"] != "result" || first["status"] != "changed" || first["changed"] != true || !strings.Contains(first["diff"].(string), "+SELINUX=disabled") {
		t.Errorf("first = %v", first)
	}
	if failed["rc"] != float64(1) || failed["msg"] != "command exited 1: boom" || fmt.Sprint(failed["warnings"]) != "[uptime is not installed]" {
		t.Errorf("failed = %v", failed)
	}
	if recap["type"] != "recap" || recap["exit_code"] != float64(2) {
		t.Errorf("recap = %v", recap)
	}
}
