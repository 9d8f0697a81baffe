package remote

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidStamp(t *testing.T) {
	tests := []struct {
		stamp string
		ok    bool
	}{
		{"65024:1196041:6094434:81ed:0:1795465940.028888641:1795465940.028888641", true},
		{"65024:1196041:6094434:81ed:0:1795465940.000000000:1795465940.028888641", true},
		// whole-second ctimes: a change in the same second would go unnoticed
		{"65024:1196041:6094434:81ed:0:1795465940.000000000:1795465940.000000000", false},
		// a symbolic link (a stat without -L) or a directory is not the file that runs
		{"65024:1196041:72:a1ff:0:1795465940.028888641:1795465940.028888641", false},
		{"65024:1196041:4096:41ed:0:1795465940.028888641:1795465940.028888641", false},
		// a stat without %.9Y (busybox) prints something else
		{"65024:1196041:6094434:81ed:0:1795465940:1795465940", false},
		{"65024:1196041:6094434:81ed:0:?:?", false},
		{"", false},
		{"65024:1196041:6094434:81ed:0:1795465940.028888641:1795465940.028888641\nx", false},
	}
	for _, tt := range tests {
		if got := validStamp(tt.stamp); got != tt.ok {
			t.Errorf("validStamp(%q) = %v", tt.stamp, got)
		}
	}
}

func TestStampsStore(t *testing.T) {
	const (
		good  = "65024:1196041:6094434:81ed:0:1795465940.028888641:1795465940.028888641"
		good2 = "65024:1196042:6094434:81ed:0:1795465990.028888641:1795465990.028888641"
	)
	build := strings.Repeat("a", 64)
	path := filepath.Join(t.TempDir(), "state", "runbook", "helper-stamps.json")
	now := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	open := func() *Stamps { return &Stamps{Path: path, now: clock} }

	a := open()
	if b, s := a.lookup("root@h1:22 SHA256:k1"); b != "" || s != "" {
		t.Fatalf("empty store: %q %q", b, s)
	}
	a.record("root@h1:22 SHA256:k1", build, good)
	a.record("root@h2:22 SHA256:k2", build, good)
	a.record("root@h3:22 SHA256:k3", build, "1:2:3:81ed:0:4:5") // unusable: not kept
	if b, s := a.lookup("root@h1:22 SHA256:k1"); b != build || s != good {
		t.Fatalf("after record: %q %q", b, s)
	}
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v %v", st, err)
	}

	// A second run that started before the first saved, changing another host: saving
	// merges rather than overwrites.
	b := open()
	b.load()
	b.entries = map[string]stampEntry{}
	b.record("root@h2:22 SHA256:k2", build, good2)
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	c := open()
	tests := []struct {
		key, build, stamp string
	}{
		{"root@h1:22 SHA256:k1", build, good},
		{"root@h2:22 SHA256:k2", build, good2},
		{"root@h3:22 SHA256:k3", "", ""},
		// another host key at the same address is another host
		{"root@h1:22 SHA256:other", "", ""},
	}
	for _, tt := range tests {
		if b, s := c.lookup(tt.key); b != tt.build || s != tt.stamp {
			t.Errorf("%s: %q %q, want %q %q", tt.key, b, s, tt.build, tt.stamp)
		}
	}

	// Past its age a verification no longer stands, and saving drops it.
	now = now.Add(DefaultStampAge + time.Minute)
	d := open()
	if b, _ := d.lookup("root@h1:22 SHA256:k1"); b != "" {
		t.Errorf("an old stamp was used")
	}
	d.record("root@h4:22 SHA256:k4", build, good)
	if err := d.Save(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "h1:22") || !strings.Contains(string(data), "h4:22") {
		t.Errorf("after age: %s", data)
	}

	// A damaged file is an empty store (each host is hashed again), and is replaced.
	os.WriteFile(path, []byte("{not json"), 0o600)
	e := open()
	if b, _ := e.lookup("root@h4:22 SHA256:k4"); b != "" {
		t.Errorf("damaged file gave a stamp")
	}
	e.record("root@h5:22 SHA256:k5", build, good)
	if err := e.Save(); err != nil {
		t.Fatal(err)
	}
	if b, _ := open().lookup("root@h5:22 SHA256:k5"); b != build {
		t.Errorf("not saved over a damaged file")
	}

	// A store without a path lives in memory only; a nil store knows nothing.
	m := &Stamps{now: clock}
	m.record("k", build, good)
	if b, _ := m.lookup("k"); b != build || m.Save() != nil {
		t.Errorf("in-memory store")
	}
	var none *Stamps
	if b, s := none.lookup("k"); b != "" || s != "" || none.Save() != nil {
		t.Errorf("nil store")
	}
}

func TestDefaultStampsPath(t *testing.T) {
	home := t.TempDir()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_STATE_HOME": "/state", "HOME": home}, "/state/runbook/helper-stamps.json"},
		{map[string]string{"XDG_STATE_HOME": "relative", "HOME": home}, filepath.Join(home, ".local/state/runbook/helper-stamps.json")},
		{map[string]string{"HOME": filepath.Join(home, "missing")}, ""},
		{map[string]string{}, ""},
	}
	for _, tt := range tests {
		if got := DefaultStampsPath(env(tt.env)); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.env, got, tt.want)
		}
	}
}

// TestStoredStampLine: only the store step's own line, one and last, gives a stamp.
func TestStoredStampLine(t *testing.T) {
	const st = "2049:1234:8500000:81ed:0:1765150000.123456789:1765150000.123456789"
	for _, c := range []struct {
		out, want string
	}{
		{stampLine + " " + st + "\n", st},
		{"motd\n" + stampLine + " " + st + "\n", st},
		{stampLine + " " + st + "\nmore\n", ""},
		{stampLine + " " + st + "\n" + stampLine + " " + st + "\n", ""},
		{stampLine + " 1:2:3\n", ""},
		{"", ""},
	} {
		if got := storedStamp(c.out); got != c.want {
			t.Errorf("storedStamp(%q) = %q, want %q", c.out, got, c.want)
		}
	}
}
