package transport

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// TestLabSSHConfig dials real lab hosts as an operator's ssh_config describes them:
// aliases only (HostName, Port), a three-connection ProxyJump chain whose hops are aliases
// (one with a HostKeyAlias), and a key held by OpenSSH's own ssh-agent, not x/crypto's.
func TestLabSSHConfig(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h1, h2, h3 := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
	dir := t.TempDir()
	t.Setenv("HOME", dir)

	// Keys of hosts 2 and 3 under their management addresses, and host 2's under an alias.
	kh := filepath.Join(dir, "known_hosts")
	khLines := fmt.Sprintf("hop2-key %s\n%s %s\n", knownHostsKey(t, lab, 1), h3.MgmtIP, knownHostsKey(t, lab, 2))
	if err := os.WriteFile(kh, []byte(khLines), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	// The same hosts, logging in with the lab key's file, or with OpenSSH's agent alone.
	withFile := filepath.Join(dir, "ssh_config")
	withAgent := filepath.Join(dir, "ssh_config_agent")
	writeConf := func(path, auth string) {
		conf := fmt.Sprintf(`Host hop1
  HostName 127.0.0.1
  Port %d
Host hop2
  HostName %s
  HostKeyAlias hop2-key
Host deep
  HostName %s
  ProxyJump hop1,hop2
Host *
  User root
%s
  UserKnownHostsFile %s %s
  StrictHostKeyChecking yes
`, h1.Port, h2.MgmtIP, h3.MgmtIP, auth, lab.KnownHosts, kh)
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(withFile, "  IdentityFile "+lab.Key+"\n  IdentitiesOnly yes\n  IdentityAgent none")
	writeConf(withAgent, "  IdentityFile none\n  IdentityAgent "+sock)
	hostname := func(t *testing.T, d *Dialer, name string) string {
		t.Helper()
		tg, err := ResolveTarget(name, Target{}, d.SSHConfig)
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.Dial(ctx, tg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var out bytes.Buffer
		if code, err := c.Run(ctx, "cat /etc/hostname", nil, &out, nil); err != nil || code != 0 {
			t.Fatalf("%s: cat /etc/hostname: %d %v", name, code, err)
		}
		return strings.TrimSpace(out.String())
	}

	t.Run("alias", func(t *testing.T) {
		if got := hostname(t, &Dialer{SSHConfig: withFile}, "hop1"); got != h1.Name {
			t.Fatalf("hop1 reached %q; want %q", got, h1.Name)
		}
	})
	t.Run("ProxyJump chain of aliases", func(t *testing.T) {
		if got := hostname(t, &Dialer{SSHConfig: withFile}, "deep"); got != h3.Name {
			t.Fatalf("deep reached %q; want %q", got, h3.Name)
		}
	})

	t.Run("OpenSSH ssh-agent", func(t *testing.T) {
		agentBin, err := exec.LookPath("ssh-agent")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("OpenSSH's ssh-agent is needed: %v", err)
			}
			t.Skipf("no ssh-agent: %v", err)
		}
		agent := exec.Command(agentBin, "-D", "-a", sock)
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = agent.Process.Kill()
			_ = agent.Wait()
		})
		for i := 0; ; i++ {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			if i == 100 {
				t.Fatal("ssh-agent did not create its socket")
			}
			time.Sleep(20 * time.Millisecond)
		}
		add := exec.Command("ssh-add", lab.Key)
		add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v: %s", err, out)
		}
		// No key file at all: only the agent can log in, to a host and through the chain.
		d := &Dialer{Agent: true, SSHConfig: withAgent}
		if got := hostname(t, d, "hop1"); got != h1.Name {
			t.Fatalf("via ssh-agent reached %q; want %q", got, h1.Name)
		}
		if got := hostname(t, d, "deep"); got != h3.Name {
			t.Fatalf("via ssh-agent through the chain reached %q; want %q", got, h3.Name)
		}
	})
}
