package system

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules/moduletest"
)

func hostsFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hosts", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHostnameTimelines: check (drift, nothing written, the exact diff apply makes) →
// apply (changed) → check (ok) → apply (ok), with the files checked at the end.
func TestHostnameTimelines(t *testing.T) {
	cases := []struct {
		name     string
		nodename string
		files    map[string]string
		args     map[string]cty.Value
		diff     string // the diff's after side
		files2   map[string]string
		hostctl  bool
		warn     string
	}{
		{name: "rename, the lab's hosts line follows", nodename: "lab01",
			files: map[string]string{"/etc/hostname": "lab01\n", "/etc/hosts": hostsFixture(t, "lab.hosts")},
			args:  map[string]cty.Value{"name": s("web01"), "update_hosts": cty.True},
			diff:  "runtime: web01\npersistent: web01\n/etc/hosts: 10.201.0.11\tweb01\n",
			files2: map[string]string{"/etc/hostname": "web01\n",
				"/etc/hosts": strings.Replace(hostsFixture(t, "lab.hosts"), "\tlab01", "\tweb01", 1)}},
		{name: "fully qualified rename on Debian's 127.0.1.1 line", nodename: "old",
			files: map[string]string{"/etc/hostname": "old.example.net\n", "/etc/hosts": hostsFixture(t, "debian.hosts")},
			args:  map[string]cty.Value{"name": s("kvm01.example.net"), "update_hosts": cty.True},
			diff:  "runtime: kvm01.example.net\npersistent: kvm01.example.net\n/etc/hosts: 127.0.1.1\tkvm01.example.net\tkvm01\n",
			files2: map[string]string{"/etc/hosts": strings.Replace(hostsFixture(t, "debian.hosts"),
				"127.0.1.1\told.example.net\told", "127.0.1.1\tkvm01.example.net\tkvm01", 1)}},
		{name: "EL hosts without the name get a 127.0.1.1 line", nodename: "localhost.localdomain",
			files: map[string]string{"/etc/hostname": "localhost.localdomain\n", "/etc/hosts": hostsFixture(t, "el.hosts")},
			args:  map[string]cty.Value{"name": s("kvm02"), "update_hosts": cty.True},
			diff:  "runtime: kvm02\npersistent: kvm02\n/etc/hosts: 127.0.1.1\tkvm02\n",
			files2: map[string]string{"/etc/hosts": strings.Replace(hostsFixture(t, "el.hosts"),
				"localhost4.localdomain4\n", "localhost4.localdomain4\n127.0.1.1\tkvm02\n", 1)}},
		{name: "no /etc/hostname yet, hosts untouched without update_hosts", nodename: "box",
			files:  map[string]string{"/etc/hosts": hostsFixture(t, "lab.hosts")},
			args:   map[string]cty.Value{"name": s("box")},
			diff:   "runtime: box\npersistent: box\n",
			files2: map[string]string{"/etc/hostname": "box\n", "/etc/hosts": hostsFixture(t, "lab.hosts")}},
		{name: "comments in /etc/hostname are kept", nodename: "a",
			files:  map[string]string{"/etc/hostname": "# set by the installer\na\n"},
			args:   map[string]cty.Value{"name": s("b")},
			diff:   "runtime: b\npersistent: b\n",
			files2: map[string]string{"/etc/hostname": "# set by the installer\nb\n"}},
		{name: "only the runtime name drifted", nodename: "rescue",
			files:  map[string]string{"/etc/hostname": "db01\n"},
			args:   map[string]cty.Value{"name": s("db01")},
			diff:   "runtime: db01\npersistent: db01\n",
			files2: map[string]string{"/etc/hostname": "db01\n"}},
		{name: "pretty name with hostnamectl", nodename: "db01", hostctl: true,
			files:  map[string]string{"/etc/hostname": "db01\n", "/etc/machine-info": "PRETTY_HOSTNAME=\"old one\"\n"},
			args:   map[string]cty.Value{"name": s("db01"), "pretty": s(`DB "one"`)},
			diff:   "runtime: db01\npersistent: db01\npretty: DB \"one\"\n",
			files2: map[string]string{"/etc/machine-info": "PRETTY_HOSTNAME=\"DB \\\"one\\\"\"\n"}},
		{name: "pretty name without hostnamectl warns", nodename: "x",
			files: map[string]string{"/etc/hostname": "y\n"},
			args:  map[string]cty.Value{"name": s("y"), "pretty": s("Why")},
			diff:  "runtime: y\npersistent: y\n",
			warn:  "this host has no hostnamectl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, true)
			h.nodename = tc.nodename
			h.mkdir("/etc")
			for p, c := range tc.files {
				h.write(p, c, 0o644)
			}
			if tc.hostctl {
				h.tools["hostnamectl"] = true
				h.external = func(argv []string) (int, string, string, error) {
					if len(argv) != 5 || argv[1] != "set-hostname" || argv[2] != "--pretty" || argv[3] != "--" {
						return 1, "", "unexpected " + strings.Join(argv, " "), nil
					}
					v := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(argv[4])
					return 0, "", "", os.WriteFile(filepath.Join(h.root, "etc/machine-info"), []byte("PRETTY_HOSTNAME=\""+v+"\"\n"), 0o644)
				}
			}
			name := tc.args["name"].AsString()
			// Each check, and the apply after the first, runs nothing but reads and writes
			// no file.
			var before string
			res := moduletest.Timeline(t, Hostname{test: h.machine()}, tc.args,
				moduletest.Before(func(_ testing.TB, _ string) { h.calls, before = nil, h.tree() }),
				moduletest.Unchanged(func(t testing.TB, step string) {
					h.onlyReads(t, step)
					if after := h.tree(); after != before {
						t.Fatalf("%s changed files:\n%s\n---\n%s", step, before, after)
					}
				}))
			for i, r := range res {
				if tc.warn != "" && (len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], tc.warn)) {
					t.Errorf("step %d: warnings %q, want %q", i, r.Warnings, tc.warn)
				}
			}
			checked, applied := res[0], res[1]
			if checked.Diff == nil || applied.Diff == nil || *checked.Diff != *applied.Diff {
				t.Fatalf("check's diff differs from apply's:\n%+v\n%+v", checked.Diff, applied.Diff)
			}
			if checked.Diff.After != tc.diff {
				t.Errorf("diff after:\n%q\nwant:\n%q", checked.Diff.After, tc.diff)
			}
			if d := data(t, Hostname{}, applied); d["runtime"] != name || d["previous_runtime"] != tc.nodename || h.nodename != name {
				t.Errorf("data %v, kernel name %q", d, h.nodename)
			}
			for p, want := range tc.files2 {
				if got := h.read(p); got != want {
					t.Errorf("%s:\n%q\nwant:\n%q", p, got, want)
				}
			}
		})
	}
}

func TestHostnameSethostnameFails(t *testing.T) {
	h := newFakeHost(t, false)
	h.nodename = "a"
	h.write("/etc/hostname", "a\n", 0o644)
	h.setErr = syscall.EPERM
	_, err := moduletest.Run(t, Hostname{test: h.machine()}, map[string]cty.Value{"name": s("b")}, true)
	if err == nil || !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "set the running hostname to b") {
		t.Fatalf("error %v", err)
	}
}

func TestUpdateHosts(t *testing.T) {
	cases := []struct {
		name, in string
		old      []string
		newName  string
		want     string
		changes  int
	}{
		{"already named", "127.0.1.1\tweb\n", []string{"web"}, "web", "127.0.1.1\tweb\n", 0},
		{"renamed where it appears, comment kept", "10.0.0.5  old  # mgmt\n192.168.1.5 old-data\n", []string{"old"}, "new",
			"10.0.0.5  new  # mgmt\n192.168.1.5 old-data\n", 1},
		{"rename that repeats a name is dropped", "127.0.1.1 old new\n", []string{"old"}, "new", "127.0.1.1 new\n", 1},
		{"localhost is never renamed", "127.0.0.1 localhost\n", []string{"localhost"}, "web",
			"127.0.0.1 localhost\n127.0.1.1\tweb\n", 1},
		{"the 127.0.1.1 line is taken over", "127.0.0.1 localhost\n127.0.1.1 stale\n", []string{"other"}, "a.b.c",
			"127.0.0.1 localhost\n127.0.1.1\ta.b.c a\n", 1},
		{"empty file", "", []string{""}, "web", "127.0.1.1\tweb\n", 1},
		{"no final newline", "127.0.0.1 localhost", nil, "web", "127.0.0.1 localhost\n127.0.1.1\tweb\n", 1},
		{"short names follow fully qualified ones", "10.1.1.1 old.x.org old\n", []string{"old.x.org", "old"}, "new.x.org",
			"10.1.1.1 new.x.org new\n", 1},
		{"the address is never a name", "10.0.0.1 web\nold 10.0.0.1\n", []string{"old"}, "web", "10.0.0.1 web\nold 10.0.0.1\n", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, changes := updateHosts([]byte(tc.in), tc.old, tc.newName)
			if string(got) != tc.want || len(changes) != tc.changes {
				t.Errorf("got %q with %d changes, want %q with %d", got, len(changes), tc.want, tc.changes)
			}
		})
	}
}

func TestHostnameFileAndPretty(t *testing.T) {
	for in, want := range map[string]string{"web\n": "web", "# c\n\n  web  \n": "web", "": "", "# only\n": ""} {
		if got := parseHostnameFile([]byte(in)); got != want {
			t.Errorf("parseHostnameFile(%q) = %q, want %q", in, got, want)
		}
	}
	mi := filepath.Join(t.TempDir(), "machine-info")
	for text, want := range map[string]string{
		"PRETTY_HOSTNAME=\"KVM host 01, rack 4\"\nCHASSIS=server\n": "KVM host 01, rack 4",
		"# none\nCHASSIS=vm\n":        "",
		"PRETTY_HOSTNAME='a \"b\"'\n": `a "b"`,
	} {
		if err := os.WriteFile(mi, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := readPretty(mi); err != nil || got != want {
			t.Errorf("readPretty(%q) = %q, %v; want %q", text, got, err, want)
		}
	}
	if got, err := readPretty(mi + ".missing"); err != nil || got != "" {
		t.Errorf("missing machine-info: %q, %v", got, err)
	}
}

func TestHostnameValidate(t *testing.T) {
	long := strings.Repeat("a", 40) + "." + strings.Repeat("b", 30)
	cases := []struct {
		args map[string]cty.Value
		want string
	}{
		{map[string]cty.Value{"name": s(long)}, "at most 64 characters; this one has 71"},
		{map[string]cty.Value{"name": s("ok"), "pretty": s("two\nlines")}, "one line"},
		{map[string]cty.Value{"name": s("kvm01.example.net"), "pretty": s("KVM 01")}, ""},
	}
	for _, tc := range cases {
		var msgs []string
		for _, e := range moduletest.Validate(t, Hostname{}, tc.args) {
			msgs = append(msgs, e.Error())
		}
		got := strings.Join(msgs, "; ")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Validate(%v) = %q, want %q", tc.args, got, tc.want)
		}
	}
	for _, bad := range []string{"-lead", "trail-", "under_score", "a..b", "sp ace", ""} {
		if hostnamePattern.MatchString(bad) {
			t.Errorf("pattern accepts %q", bad)
		}
	}
	for _, good := range []string{"a", "kvm01", "KVM-01.example.net", "1host"} {
		if !hostnamePattern.MatchString(good) {
			t.Errorf("pattern refuses %q", good)
		}
	}
}
