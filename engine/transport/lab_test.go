package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/internal/sh"
	"github.com/runbook/runbook/testenv"
)

// labTarget is how the engine would see a lab host: its ssh_config entry
// (127.0.0.1, forwarder port, lab key, lab known_hosts, strict checking).
func labTarget(t testing.TB, lab *testenv.Lab, i int) Target {
	t.Helper()
	tg, err := ResolveTarget(lab.Hosts[i].Name, Target{}, lab.SSHConfig)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// knownHostsLine returns the lab's known_hosts key ("type base64") for host i.
func knownHostsKey(t testing.TB, lab *testenv.Lab, i int) string {
	t.Helper()
	b, err := os.ReadFile(lab.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "[127.0.0.1]:" + strconv.Itoa(lab.Hosts[i].Port) + " "
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimPrefix(l, prefix)
		}
	}
	t.Fatalf("no known_hosts entry for %s", lab.Hosts[i].Name)
	return ""
}

func TestLab(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := &Dialer{Keepalive: 5 * time.Second}
	h1, h2 := lab.Hosts[0], lab.Hosts[1]

	c, err := d.Dial(ctx, labTarget(t, lab, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("hostname", func(t *testing.T) {
		var out bytes.Buffer
		code, err := c.Run(ctx, "hostname", nil, &out, nil)
		if err != nil || code != 0 || strings.TrimSpace(out.String()) != h1.Name {
			t.Fatalf("hostname: %d %v %q; want %q", code, err, out.String(), h1.Name)
		}
	})

	t.Run("20 sessions on one connection", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var out bytes.Buffer
				code, err := c.Run(ctx, fmt.Sprintf("echo %d", i), nil, &out, nil)
				if err != nil || code != 0 || out.String() != fmt.Sprintf("%d\n", i) {
					errs <- fmt.Errorf("session %d: %d %v %q", i, code, err, out.String())
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("upload 5 MB", func(t *testing.T) {
		data := make([]byte, 5<<20)
		_, _ = rand.Read(data)
		sum := sha256.Sum256(data)
		start := time.Now()
		if err := c.Upload(ctx, bytes.NewReader(data), "/tmp/upload.bin", 0o750); err != nil {
			t.Fatal(err)
		}
		t.Logf("5 MB upload: %s", time.Since(start).Round(time.Millisecond))
		var out bytes.Buffer
		if code, err := c.Run(ctx, "sha256sum /tmp/upload.bin; stat -c %a /tmp/upload.bin", nil, &out, nil); err != nil || code != 0 {
			t.Fatalf("sha256sum: %d %v", code, err)
		}
		want := hex.EncodeToString(sum[:]) + "  /tmp/upload.bin\n750\n"
		if out.String() != want {
			t.Errorf("on the host: %q; want %q", out.String(), want)
		}
		// The name is created exclusively: neither a file nor a link planted there is
		// written (through).
		if err := c.Upload(ctx, strings.NewReader("again"), "/tmp/upload.bin", 0o600); err == nil {
			t.Error("a second upload to the same name overwrote the file")
		}
		if code, err := c.Run(ctx, "echo keep > /tmp/victim && ln -s /tmp/victim /tmp/planted", nil, nil, nil); err != nil || code != 0 {
			t.Fatalf("plant a link: %d %v", code, err)
		}
		if err := c.Upload(ctx, strings.NewReader("evil"), "/tmp/planted", 0o600); err == nil {
			t.Error("an upload to a planted link succeeded")
		}
		out.Reset()
		if code, err := c.Run(ctx, "cat /tmp/victim", nil, &out, nil); err != nil || code != 0 || out.String() != "keep\n" {
			t.Errorf("the link's target: %q %d %v", out.String(), code, err)
		}
	})

	t.Run("wrong known_hosts", func(t *testing.T) {
		tg := labTarget(t, lab, 0)
		kh := filepath.Join(t.TempDir(), "known_hosts")
		// host 2's key recorded for host 1's address
		line := "[127.0.0.1]:" + strconv.Itoa(h1.Port) + " " + knownHostsKey(t, lab, 1) + "\n"
		if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		tg.KnownHostsFiles = []string{kh}
		_, err := d.Dial(ctx, tg)
		var hk *HostKeyError
		if !IsUnreachable(err) || !errors.As(err, &hk) || hk.Kind != "mismatch" {
			t.Fatalf("err = %v; want an unreachable host key mismatch", err)
		}
		t.Log(err)
	})

	t.Run("ProxyJump via host 1 to host 2", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(kh, []byte(h2.MgmtIP+" "+knownHostsKey(t, lab, 1)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tg := labTarget(t, lab, 1)
		tg.Address, tg.Port, tg.KnownHostsFiles, tg.ProxyJump = h2.MgmtIP, 22, []string{kh}, h1.Name
		jd := &Dialer{SSHConfig: lab.SSHConfig}
		jc, err := jd.Dial(ctx, tg)
		if err != nil {
			t.Fatal(err)
		}
		defer jc.Close()
		var out bytes.Buffer
		if code, err := jc.Run(ctx, "hostname", nil, &out, nil); err != nil || code != 0 || strings.TrimSpace(out.String()) != h2.Name {
			t.Fatalf("hostname via jump: %d %v %q; want %q", code, err, out.String(), h2.Name)
		}
	})

	t.Run("targets share the bastion's connection", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(kh, []byte(h2.MgmtIP+" "+knownHostsKey(t, lab, 1)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		jd := &Dialer{SSHConfig: lab.SSHConfig, Keepalive: 5 * time.Second}
		const n = 12
		// The test's own connection to host 1 (c) is there already.
		before := established(ctx, t, lab, h1.Name, "sport")
		var conns []*Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range n {
			tg := labTarget(t, lab, 1)
			tg.Name = "t" + strconv.Itoa(i)
			tg.Address, tg.Port, tg.KnownHostsFiles, tg.ProxyJump = h2.MgmtIP, 22, []string{kh}, h1.Name
			c, err := jd.Dial(ctx, tg)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		// On the bastion: one SSH connection in (from the controller, through the lab's
		// forwarder), and one out to host 2 per target.
		in, out := established(ctx, t, lab, h1.Name, "sport")-before, established(ctx, t, lab, h1.Name, "dport")
		if in != 1 || out != n {
			t.Errorf("bastion: %d connections in, %d out with %d targets open; want 1 and %d", in, out, n, n)
		}
		t.Logf("bastion with %d targets behind it: %d SSH connection in, %d out", n, in, out)
		for _, c := range conns {
			var o bytes.Buffer
			if code, err := c.Run(ctx, "hostname", nil, &o, nil); err != nil || code != 0 || strings.TrimSpace(o.String()) != h2.Name {
				t.Fatalf("hostname via the shared bastion: %d %v %q", code, err, o.String())
			}
		}
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		// The last target gone, the bastion's connection goes too.
		deadline := time.Now().Add(5 * time.Second)
		for established(ctx, t, lab, h1.Name, "sport") != before {
			if time.Now().After(deadline) {
				t.Fatal("the bastion connection is still open after every target closed")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("the bastion's connection dropped: dialled again", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(kh, []byte(h2.MgmtIP+" "+knownHostsKey(t, lab, 1)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		jd := &Dialer{SSHConfig: lab.SSHConfig}
		behind := func(name string) Target {
			tg := labTarget(t, lab, 1)
			tg.Name = name
			tg.Address, tg.Port, tg.KnownHostsFiles, tg.ProxyJump = h2.MgmtIP, 22, []string{kh}, h1.Name
			return tg
		}
		old := sshdConns(ctx, t, lab, h1.Name)
		c1, err := jd.Dial(ctx, behind("t1"))
		if err != nil {
			t.Fatal(err)
		}
		defer c1.Close()
		var pids []string
		for peer, p := range sshdConns(ctx, t, lab, h1.Name) {
			if _, ok := old[peer]; !ok {
				pids = append(pids, p...)
			}
		}
		if len(pids) == 0 {
			t.Fatal("no new sshd connection on the bastion")
		}
		// The bastion ends our session (its sshd processes for it, by PID).
		if out, err := lab.Exec(ctx, h1.Name, append([]string{"kill", "-KILL"}, pids...)...); err != nil {
			t.Fatalf("kill %v on the bastion: %v: %s", pids, err, out)
		}
		done := make(chan error, 1)
		go func() { done <- c1.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the target behind the dropped bastion connection did not see it end")
		}
		if _, err := c1.Run(ctx, "true", nil, nil, nil); !IsUnreachable(err) {
			t.Errorf("run behind the dropped bastion connection: %v; want unreachable", err)
		}
		before := len(sshdConns(ctx, t, lab, h1.Name))
		c2, err := jd.Dial(ctx, behind("t2"))
		if err != nil {
			t.Fatalf("dial after the bastion dropped the shared connection: %v", err)
		}
		defer c2.Close()
		var out bytes.Buffer
		if code, err := c2.Run(ctx, "hostname", nil, &out, nil); err != nil || code != 0 || strings.TrimSpace(out.String()) != h2.Name {
			t.Fatalf("hostname through the new bastion connection: %d %v %q", code, err, out.String())
		}
		if got := len(sshdConns(ctx, t, lab, h1.Name)) - before; got != 1 {
			t.Errorf("%d new connections on the bastion; want 1", got)
		}
	})

	t.Run("ProxyCommand", func(t *testing.T) {
		tg := labTarget(t, lab, 0)
		tg.ProxyCommand = proxyCommand(t, "127.0.0.1:"+strconv.Itoa(h1.Port))
		pc, err := d.Dial(ctx, tg)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		var out bytes.Buffer
		if code, err := pc.Run(ctx, "hostname", nil, &out, nil); err != nil || code != 0 || strings.TrimSpace(out.String()) != h1.Name {
			t.Fatalf("hostname via ProxyCommand: %d %v %q", code, err, out.String())
		}
	})

	t.Run("sudo become", func(t *testing.T) { labSudo(ctx, t, lab, d) })

	t.Run("stopped sshd", func(t *testing.T) {
		if err := lab.Break(h2.Name, testenv.BreakStop); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := d.Dial(ctx, labTarget(t, lab, 1))
		if !IsUnreachable(err) {
			t.Fatalf("err = %v; want unreachable", err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("took %s to report a stopped sshd", el)
		}
		t.Logf("stopped sshd: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
	})
}

// labSudo creates a non-root user with a password and a sudoers entry on
// lab host 2, logs in as that user and runs commands under sudo.
func labSudo(ctx context.Context, t *testing.T, lab *testenv.Lab, d *Dialer) {
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Skip("sudo is not installed on this machine (the ns tier shares its binaries): apt-get install sudo")
	}
	h := lab.Hosts[1].Name
	const user, password = "rbtest", "Corr3ct horse 'b'"
	pub, err := os.ReadFile(lab.Key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// The home lives on the host's own /tmp: /home is shared with the machine.
	script := `set -e
useradd -m -d /tmp/` + user + ` -s /bin/sh ` + user + `
echo ` + sh.Quote(user+":"+password) + ` | chpasswd
echo ` + sh.Quote(user+" ALL=(ALL:ALL) ALL") + ` > /etc/sudoers.d/` + user + `
chmod 440 /etc/sudoers.d/` + user + `
install -d -m 700 -o ` + user + ` /tmp/` + user + `/.ssh
echo ` + sh.Quote(strings.TrimSpace(string(pub))) + ` > /tmp/` + user + `/.ssh/authorized_keys
chown ` + user + ` /tmp/` + user + `/.ssh/authorized_keys
`
	if out, err := lab.Exec(ctx, h, "/bin/sh", "-c", script); err != nil {
		t.Fatalf("create %s: %v %s", user, err, out)
	}
	tg := labTarget(t, lab, 1)
	tg.User = user
	c, err := d.Dial(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		name     string
		become   Become
		wantOut  string
		wantErr  string
		wantCode int
	}{
		{name: "as root", become: Become{Method: "sudo", Password: password}, wantOut: "0 in\n"},
		{name: "again (no lecture)", become: Become{Method: "sudo", Password: password}, wantOut: "0 in\n"},
		{name: "as another user", become: Become{Method: "sudo", User: "nobody", Password: password}, wantOut: "65534 in\n"},
		{name: "wrong password", become: Become{Method: "sudo", Password: "wrong"}, wantErr: "become password rejected by sudo on " + h},
		{name: "no password", become: Become{Method: "sudo"}, wantErr: "asks for a password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			start := time.Now()
			code, err := c.RunAs(ctx, tt.become, `echo "$(id -u) $(cat)"`, strings.NewReader("in\n"), &out, &errb)
			t.Logf("%s: %s", tt.name, time.Since(start).Round(time.Millisecond))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), password) {
					t.Errorf("the error shows the password")
				}
				return
			}
			if err != nil || code != 0 || out.String() != tt.wantOut {
				t.Fatalf("RunAs = %d %v, stdout %q stderr %q; want %q", code, err, out.String(), errb.String(), tt.wantOut)
			}
		})
	}
}

// established counts the TCP connections in state established on a lab host whose source
// ("sport") or destination ("dport") port is 22.
func established(ctx context.Context, t *testing.T, lab *testenv.Lab, host, which string) int {
	t.Helper()
	out, err := lab.Exec(ctx, host, "ss", "-Htn", "state", "established", "( "+which+" = :22 )")
	if err != nil {
		t.Fatalf("ss on %s: %v: %s", host, err, out)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

// sshdConns returns the established SSH connections into a lab host: the peer address and
// port of each, with the PIDs of the sshd processes that hold it.
func sshdConns(ctx context.Context, t *testing.T, lab *testenv.Lab, host string) map[string][]string {
	t.Helper()
	out, err := lab.Exec(ctx, host, "ss", "-Htnp", "state", "established", "( sport = :22 )")
	if err != nil {
		t.Fatalf("ss on %s: %v: %s", host, err, out)
	}
	conns := map[string][]string{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		var pids []string
		for _, m := range regexp.MustCompile(`pid=([0-9]+)`).FindAllStringSubmatch(l, -1) {
			pids = append(pids, m[1])
		}
		conns[f[3]] = pids
	}
	return conns
}
