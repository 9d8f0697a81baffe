package accounts_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// labHash and labHash2 are openssl passwd -6 hashes (of "lab-secret-1" and "lab-secret-2"):
// what the lab test looks for in every output, where it must never be.
const (
	labHash  = "$6$rbLabSalt$bG1TWDWMzM7Mt.V2TwCTbKVHbvfit2fqwnd/rmUDI7LzFAXfOO4br9Jzkk5f66/RfcDURiyPzXJ/knqZgNsd91"
	labHash2 = "$6$rbLabSalt2$HxIIIyTpaHyOPZcKQnYSgO2VS46oKV0LV9tH0OywuzrHE4GjF68PTFCvGRFt8nuYQBOT.mPQptnr0kT1hfhg51"
)

type lab struct {
	t   *testing.T
	lab *testenv.Lab
	r   *labtest.Runner
}

// sh runs a shell command on lab01; a failure fails the test.
func (h *lab) sh(cmd string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.lab.Exec(ctx, "lab01", "sh", "-c", cmd)
	if err != nil {
		h.t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// shOK is sh that tolerates a failing command.
func (h *lab) shOK(cmd string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := h.lab.Exec(ctx, "lab01", "sh", "-c", "{ "+cmd+"; } 2>&1")
	return string(out)
}

// ssh logs in to lab01 as user with the private key alone (the lab's sshd, its host key
// checked), and runs cmd.
func (h *lab) ssh(user, key, cmd string) (string, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "ssh", "-F", "none", "-p", fmt.Sprint(h.lab.Hosts[0].Port), "-i", key,
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no",
		"-o", "UserKnownHostsFile="+h.lab.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
		"-l", user, "127.0.0.1", cmd)
	out, err := c.CombinedOutput()
	return string(out), err
}

func keygen(t *testing.T, name string) (priv, pub string) {
	t.Helper()
	priv = filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", priv).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	b, err := os.ReadFile(priv + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return priv, strings.TrimSpace(string(b))
}

// noHash fails the test when a hash appears in out.
func noHash(t *testing.T, where, out string) {
	t.Helper()
	for _, h := range []string{labHash, labHash2, "rbLabSalt"} {
		if strings.Contains(out, h) {
			t.Errorf("%s shows the password hash:\n%s", where, out)
		}
	}
}

// TestAccountsLab drives group, user and authorized_key on a systemd lab host (Debian's
// shadow-utils, its sshd) through the CLI: timelines for each, the hash set in
// /etc/shadow and shown nowhere (human and JSON views, the history), a key that then logs
// in, exclusive removing a planted key, and a planted link refused.
func TestAccountsLab(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("ssh-keygen is needed to make the lab user's key")
	}
	l := testlab.Start(t, testenv.Options{Tier: testenv.TierSystemd, Hosts: 1})
	h := &lab{t: t, lab: l, r: labtest.New(t, l)}
	if out := h.shOK("for p in useradd usermod userdel groupadd groupmod groupdel chpasswd; do command -v $p; done"); strings.Count(out, "/") < 7 {
		t.Fatalf("the lab host lacks shadow-utils:\n%s", out)
	}
	// Every shadow-utils program the modules run goes through a wrapper that logs its
	// command line (what /proc/PID/cmdline shows every user) before running the real one:
	// the hash must never be in that log.
	for _, p := range []string{"useradd", "usermod", "userdel", "groupadd", "groupmod", "groupdel", "chpasswd"} {
		real := strings.TrimSpace(h.sh("command -v " + p))
		h.sh(fmt.Sprintf("printf '%%s\\n' '#!/bin/sh' 'echo \"$0 $*\" >> /run/rb-argv.log' 'exec %s \"$@\"' > /usr/local/sbin/%s && chmod 755 /usr/local/sbin/%s", real, p, p))
	}
	var outputs []string
	keep := func(res [4]labtest.Result) {
		for _, r := range res {
			outputs = append(outputs, r.Out)
		}
	}

	t.Run("group", func(t *testing.T) {
		snap := func() string { return h.shOK("getent group rbops") }
		keep(h.r.Timeline("lab01", "group", []string{"name=rbops", "gid=2345"}, snap))
		if got := strings.TrimSpace(h.sh("getent group rbops")); got != "rbops:x:2345:" {
			t.Errorf("getent group rbops: %q", got)
		}
		keep(h.r.Timeline("lab01", "group", []string{"name=rbops", "gid=2346"}, snap))
		if got := strings.TrimSpace(h.sh("getent group rbops")); got != "rbops:x:2346:" {
			t.Errorf("getent group rbops after the gid change: %q", got)
		}
	})

	t.Run("user", func(t *testing.T) {
		snap := func() string {
			return h.shOK("getent passwd rbop; id rbop; getent shadow rbop | sha256sum; ls -ld /home/rbop")
		}
		res := h.r.Timeline("lab01", "user", []string{"name=rbop", "uid=2345", "group=rbops", `groups=["adm","sudo"]`,
			"shell=/bin/bash", "comment=Runbook operator", "password=" + labHash}, snap)
		keep(res)
		if !strings.Contains(res[0].Out, "password: (changed)") {
			t.Errorf("the check's diff does not say the password changes:\n%s", res[0].Out)
		}
		if got := strings.TrimSpace(h.sh("getent passwd rbop")); got != "rbop:x:2345:2346:Runbook operator:/home/rbop:/bin/bash" {
			t.Errorf("getent passwd rbop: %q", got)
		}
		if got := strings.TrimSpace(h.sh("id -nG rbop")); got != "rbops adm sudo" {
			t.Errorf("id -nG rbop: %q", got)
		}
		if got := strings.Split(h.sh("getent shadow rbop"), ":"); len(got) < 2 || got[1] != labHash {
			t.Errorf("getent shadow rbop does not hold the hash: %q", got)
		}
		if got := h.sh("stat -c '%U %a' /home/rbop"); strings.TrimSpace(got) != "rbop 755" && strings.TrimSpace(got) != "rbop 700" {
			t.Errorf("home: %s", got)
		}

		// A new hash, in check mode, through the JSON view: "(changed)", never the hash.
		js := h.r.Module("lab01", "user", "name=rbop", "password="+labHash2, "--check", "--diff", "-o", "json")
		outputs = append(outputs, js.Out)
		if js.Code != 4 || !strings.Contains(js.Out, `(changed)`) {
			t.Errorf("check of a new hash, JSON: exit %d\n%s", js.Code, js.Out)
		}

		// Locked and unlocked again.
		keep(h.r.Timeline("lab01", "user", []string{"name=rbop", "password_lock=true"}, snap))
		if got := strings.Split(h.sh("getent shadow rbop"), ":"); len(got) < 2 || got[1] != "!"+labHash {
			t.Errorf("locked: shadow field is not !hash")
		}
		keep(h.r.Timeline("lab01", "user", []string{"name=rbop", "password_lock=false"}, snap))
		if got := strings.Split(h.sh("getent shadow rbop"), ":"); len(got) < 2 || got[1] != labHash {
			t.Errorf("unlocked: shadow field is not the hash")
		}

		// Through a runbook, the hash in a sensitive variable, so the runs are recorded:
		// check (drift), exec (changed), check (in sync), with the history looked at below.
		dir := t.TempDir()
		site := filepath.Join(dir, "site.hcl")
		if err := os.WriteFile(site, []byte(`variable "rbop_hash" {
  sensitive = true
}

play "accounts" {
  hosts = "lab01"
  task "rbop password" {
    user {
      name     = "rbop"
      password = var.rbop_hash
    }
  }
}
`), 0o600); err != nil {
			t.Fatal(err)
		}
		vars := filepath.Join(dir, "secret.hcl")
		if err := os.WriteFile(vars, []byte("rbop_hash = \""+labHash2+"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for i, step := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"check", site, "-i", l.Inventory, "--var-file", vars, "--diff"}, 4, "(changed)"},
			{[]string{"exec", site, "-i", l.Inventory, "--var-file", vars, "--diff"}, 0, "changed"},
			{[]string{"check", site, "-i", l.Inventory, "--var-file", vars, "-o", "json"}, 0, `ok`},
		} {
			r := h.r.Run(step.args...)
			outputs = append(outputs, r.Out)
			if r.Code != step.code || !strings.Contains(r.Out, step.want) {
				t.Errorf("step %d (%s): exit %d, want %d and %q:\n%s", i, step.args[0], r.Code, step.code, step.want, r.Out)
			}
		}
		if got := strings.Split(h.sh("getent shadow rbop"), ":"); len(got) < 2 || got[1] != labHash2 {
			t.Errorf("the runbook did not set the new hash")
		}

		// A new hash for a locked account leaves it locked (chpasswd alone would unlock it),
		// then it is unlocked again for what follows.
		for i, step := range []struct {
			arg, field string
		}{{"password_lock=true", "!" + labHash2}, {"password=" + labHash, "!" + labHash}, {"password_lock=false", labHash}} {
			r := h.r.Module("lab01", "user", "name=rbop", step.arg)
			outputs = append(outputs, r.Out)
			if got := strings.Split(h.sh("getent shadow rbop"), ":"); r.Code != 0 || len(got) < 2 || got[1] != step.field {
				t.Errorf("lock step %d: exit %d, the shadow field is not as expected (%d chars):\n%s", i, r.Code, len(got[min(1, len(got)-1)]), r.Out)
			}
		}
	})

	priv, pub := keygen(t, "rbop-key")
	priv2, pub2 := keygen(t, "planted-key")
	t.Run("authorized_key", func(t *testing.T) {
		if out, err := h.ssh("rbop", priv, "id -un"); err == nil {
			t.Fatalf("rbop logs in before any key is authorized:\n%s", out)
		}
		snap := func() string {
			return h.shOK("ls -la /home/rbop/.ssh; cat /home/rbop/.ssh/authorized_keys")
		}
		keep(h.r.Timeline("lab01", "authorized_key", []string{"user=rbop", "key=" + pub}, snap))
		if got := h.sh("stat -c '%U %G %a' /home/rbop/.ssh /home/rbop/.ssh/authorized_keys"); got != "rbop rbops 700\nrbop rbops 600\n" {
			t.Errorf(".ssh and authorized_keys: %q", got)
		}
		out, err := h.ssh("rbop", priv, "id -un")
		if err != nil || strings.TrimSpace(out) != "rbop" {
			t.Fatalf("ssh as rbop with the key: %v\n%s", err, out)
		}

		// A key the user planted logs in, until exclusive removes it: on a line of 20 KB
		// (a long comment), which sshd takes as it takes any other.
		h.sh("runuser -u rbop -- sh -c 'echo \"" + strings.TrimSpace(pub2) + " " + strings.Repeat("c", 20000) + "\" >> /home/rbop/.ssh/authorized_keys'")
		if out, err := h.ssh("rbop", priv2, "id -un"); err != nil {
			t.Fatalf("the planted key should log in before exclusive: %v\n%s", err, out)
		}
		keep(h.r.Timeline("lab01", "authorized_key", []string{"user=rbop", "key=" + pub, "exclusive=true"}, snap))
		if out, err := h.ssh("rbop", priv2, "id -un"); err == nil {
			t.Errorf("the planted key still logs in after exclusive:\n%s", out)
		}
		if out, err := h.ssh("rbop", priv, "id -un"); err != nil || strings.TrimSpace(out) != "rbop" {
			t.Errorf("the managed key no longer logs in: %v\n%s", err, out)
		}
	})

	t.Run("planted link", func(t *testing.T) {
		h.sh("useradd -m -s /bin/sh rbevil && runuser -u rbevil -- ln -s /root/.ssh /home/rbevil/.ssh")
		before := h.sh("sha256sum /root/.ssh/authorized_keys; ls -la /root/.ssh")
		res := h.r.Module("lab01", "authorized_key", "user=rbevil", "key="+pub, "exclusive=true")
		if res.Code == 0 || !strings.Contains(res.Out, "/home/rbevil/.ssh is a symbolic link") {
			t.Errorf("want a refusal naming the link, got exit %d:\n%s", res.Code, res.Out)
		}
		if after := h.sh("sha256sum /root/.ssh/authorized_keys; ls -la /root/.ssh"); after != before {
			t.Errorf("root's .ssh changed:\n%s\n->\n%s", before, after)
		}
		h.sh("userdel -r rbevil 2>/dev/null; rm -f /home/rbevil/.ssh; rmdir /home/rbevil 2>/dev/null; true")
	})

	t.Run("absent", func(t *testing.T) {
		keep(h.r.Timeline("lab01", "authorized_key", []string{"user=rbop", "key=" + pub, "state=absent"}, nil))
		if out, err := h.ssh("rbop", priv, "id -un"); err == nil {
			t.Errorf("the removed key still logs in:\n%s", out)
		}
		// The logins above leave rbop's systemd --user manager behind for a while, and
		// userdel refuses a user with processes: end the user's sessions first.
		h.sh("loginctl terminate-user rbop 2>/dev/null; for i in $(seq 100); do pgrep -u rbop >/dev/null || exit 0; sleep 0.1; done; pgrep -a -u rbop; exit 1")
		snap := func() string { return h.shOK("getent passwd rbop; ls -d /home/rbop") }
		keep(h.r.Timeline("lab01", "user", []string{"name=rbop", "state=absent", "remove=true"}, snap))
		if out := h.shOK("getent passwd rbop; getent shadow rbop; ls -d /home/rbop"); strings.Contains(out, "rbop:") || !strings.Contains(out, "No such file") {
			t.Errorf("rbop is not gone:\n%s", out)
		}
		keep(h.r.Timeline("lab01", "group", []string{"name=rbops", "state=absent"}, func() string { return h.shOK("getent group rbops") }))
		if out := h.shOK("getent group rbops"); strings.Contains(out, "rbops") {
			t.Errorf("rbops is not gone: %s", out)
		}
	})

	argv := h.sh("cat /run/rb-argv.log")
	if !strings.Contains(argv, "/usr/local/sbin/chpasswd -e") || !strings.Contains(argv, "/usr/local/sbin/useradd") {
		t.Errorf("the wrappers did not see the modules' programs:\n%s", argv)
	}
	noHash(t, "the command lines run on the host", argv)

	// The hash is in no output, and nowhere in the history (or anything else the runs
	// kept under the state directory).
	for i, out := range outputs {
		noHash(t, fmt.Sprintf("run %d", i), out)
	}
	state := os.Getenv("XDG_STATE_HOME")
	files, diffs := 0, 0
	filepath.WalkDir(state, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		files++
		b, _ := os.ReadFile(p)
		noHash(t, p, string(b))
		if strings.Contains(string(b), "password: (changed)") {
			diffs++
		}
		return nil
	})
	if diffs == 0 {
		t.Errorf("the history under %s holds no password diff: nothing shows it was looked at", state)
	}
	if files == 0 {
		t.Errorf("no history under %s to look for the hash in", state)
	}
	if r := h.r.Run("report", "--diff", "--top", "5", "-o", "json"); !strings.Contains(r.Out, `"drift"`) {
		t.Errorf("the history's report does not show the runs (exit %d):\n%.2000s", r.Code, r.Out)
	} else {
		noHash(t, "runbook report --format json", r.Out)
	}
}
