package transport

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDocExample resolves the ssh_config example of docs/transport.md and
// checks the result the page shows.
func TestDocExample(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "transport.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := func(lang string) string {
		m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindSubmatch(doc)
		if m == nil {
			t.Fatalf("docs/transport.md has no %s block", lang)
		}
		return string(m[1])
	}
	cfg := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfg, []byte(block("ssh-config")), 0o600); err != nil {
		t.Fatal(err)
	}
	tg, err := ResolveTarget("db-7", Target{User: "root"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{
		"address":                  tg.Address,
		"port":                     itoa(tg.Port),
		"user":                     tg.User,
		"proxy_jump":               tg.ProxyJump,
		"identity_files":           strings.ReplaceAll(strings.Join(tg.IdentityFiles, " "), home, "~"),
		"identities_only":          map[bool]string{true: "true", false: "false"}[tg.IdentitiesOnly],
		"connect_timeout":          tg.ConnectTimeout.String(),
		"strict_host_key_checking": tg.StrictHostKeyChecking,
	}
	for _, line := range strings.Split(strings.TrimSpace(block("resolved")), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		if got[k] != v {
			t.Errorf("docs say %s: %s; ResolveTarget gives %q", k, v, got[k])
		}
		delete(got, k)
	}
	for k := range got {
		t.Errorf("docs do not show %s", k)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
