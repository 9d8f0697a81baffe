package transport

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestResolveTarget(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfg := filepath.Join("testdata", "ssh_config")
	defaultKH := []string{filepath.Join(home, ".ssh", "known_hosts"), "/etc/ssh/ssh_known_hosts"}
	tests := []struct {
		name    string
		inv     Target
		want    Target
		wantErr string
	}{
		{
			name: "web1",
			want: Target{Name: "web1", Address: "10.0.0.11", Port: 2222, User: "deploy",
				IdentityFiles:  []string{filepath.Join(home, ".ssh/web_key"), "/keys/deploy@10.0.0.11"},
				IdentitiesOnly: true, IdentityAgent: filepath.Join(home, "agent.sock"),
				KnownHostsFiles:       []string{filepath.Join(home, ".ssh/kh1"), "/etc/kh2", "/etc/ssh/ssh_known_hosts"},
				StrictHostKeyChecking: "accept-new", ConnectTimeout: 7 * time.Second},
		},
		{
			name: "web1",
			inv: Target{Address: "192.0.2.1", Port: 22, User: "root", IdentityFile: "~/inv_key",
				StrictHostKeyChecking: "yes", ConnectTimeout: time.Second, KnownHostsFiles: []string{"~/inv_kh"},
				BecomeMethod: "sudo", BecomePassword: "pw"},
			// With an address, ssh_config is read for `ssh 192.0.2.1` (as Ansible runs it):
			// web1's block does not apply.
			want: Target{Name: "web1", Address: "192.0.2.1", Port: 22, User: "root",
				IdentityFile:          filepath.Join(home, "inv_key"),
				KnownHostsFiles:       []string{filepath.Join(home, "inv_kh")},
				StrictHostKeyChecking: "yes", ConnectTimeout: time.Second,
				BecomeMethod: "sudo", BecomeUser: "root", BecomePassword: "pw"},
		},
		{
			name: "db-main",
			want: Target{Name: "db-main", Address: "db-main.internal", Port: 22, User: "fallback",
				ProxyJump: "admin@bastion:2200,jump2", KnownHostsFiles: defaultKH, StrictHostKeyChecking: "yes"},
		},
		{
			name: "db-old", // its ProxyJump none comes first and wins over db-*
			want: Target{Name: "db-old", Address: "db-old.internal", Port: 22, User: "fallback",
				KnownHostsFiles: defaultKH, StrictHostKeyChecking: "yes"},
		},
		{
			name: "db-main",
			inv:  Target{ProxyJump: "none"},
			want: Target{Name: "db-main", Address: "db-main.internal", Port: 22, User: "fallback",
				KnownHostsFiles: defaultKH, StrictHostKeyChecking: "yes"},
		},
		{
			name: "app.corp",
			want: Target{Name: "app.corp", Address: "app.corp", Port: 22, User: "corp",
				ProxyCommand: "nc -x proxy:1080 app.corp 22", KnownHostsFiles: defaultKH, StrictHostKeyChecking: "yes"},
		},
		{
			name: "skip.corp", // negated pattern
			want: Target{Name: "skip.corp", Address: "skip.corp", Port: 22, User: "fallback",
				KnownHostsFiles: defaultKH, StrictHostKeyChecking: "yes"},
		},
		{
			name: "app.corp",
			inv:  Target{ProxyJump: "gw"}, // the inventory's jump replaces ssh_config's ProxyCommand
			want: Target{Name: "app.corp", Address: "app.corp", Port: 22, User: "corp",
				ProxyJump: "gw", KnownHostsFiles: defaultKH, StrictHostKeyChecking: "yes"},
		},
		{
			name: "legacy",
			want: Target{Name: "legacy", Address: "legacy", Port: 22, User: "fallback",
				IdentityAgent: "none", StrictHostKeyChecking: "no"},
		},
		{
			// the inventory's ProxyCommand (from ansible_ssh_common_args) is expanded too; with
			// an address, %n is the address, as in Ansible's `ssh ADDRESS`
			name: "app.corp",
			inv:  Target{Address: "10.1.2.3", User: "ops", ProxyCommand: "ssh -W '%h:%p' %r@gw # %n"},
			want: Target{Name: "app.corp", Address: "10.1.2.3", Port: 22, User: "ops",
				ProxyCommand: "ssh -W '10.1.2.3:22' ops@gw # 10.1.2.3", KnownHostsFiles: defaultKH, StrictHostKeyChecking: "yes"},
		},
		// A hostile address is refused even where no shell sees it: it would reach
		// known_hosts and file names.
		{name: "app.corp", inv: Target{Address: "127.0.0.1;touch${IFS}x;#", ProxyJump: "gw"},
			wantErr: `app.corp: address "127.0.0.1;touch${IFS}x;#" contains ';'`},
		{name: "app.corp", inv: Target{Address: "127.0.0.1;touch${IFS}x;#", ProxyCommand: "nc -x proxy:1080 %h %p"},
			wantErr: `app.corp: ProxyCommand "nc -x proxy:1080 %h %p": %h would expand to the host name "127.0.0.1;touch${IFS}x;#", which contains ';'`},
		{name: "app.corp", inv: Target{Address: "127.0.0.1", User: "`id`", ProxyCommand: "nc %h %p # %r"},
			wantErr: "%r would expand to the remote user \"`id`\""},
		{name: "$(id).corp", wantErr: `%h would expand to the host name "$(id).corp"`},
		{name: "web1", inv: Target{Address: "::ffff:127.0.0.1%x\n* ssh-ed25519 AAAA\n#"},
			wantErr: `web1: address "::ffff:127.0.0.1%x\n* ssh-ed25519 AAAA\n#" contains the control character '\n'`},
		{name: "web1", inv: Target{User: "root;id"}, wantErr: `web1: remote user "root;id" contains ';'`},
		{name: "db-x/../../y", wantErr: `db-x/../../y: address "db-x/../../y.internal" contains '/'`}, // HostName %h.internal
		// ssh's "IdentityFile none" is for ssh_config: from the inventory it is refused
		{name: "web1", inv: Target{IdentityFile: "none"}, wantErr: `web1: the inventory's key file is "none"`},
		{name: "bad-timeout", wantErr: `ConnectTimeout "soon"`},
		{name: "bad-strict", wantErr: `StrictHostKeyChecking "maybe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveTarget(tt.name, tt.inv, cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// The name is for display and for matching ssh_config; where %n puts it into a file name
// it must be a plain component of a name, and so must %h and %r.
func TestResolveTargetFileNames(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfg := filepath.Join(home, "config")
	if err := os.WriteFile(cfg, []byte("Host *\n  UserKnownHostsFile ~/.ssh/kh.d/%n\n  IdentityFile ~/.ssh/keys/%r@%n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		inv     Target
		want    []string // known_hosts files, then identity files
		wantErr []string
	}{
		{name: "web-01.example.com", inv: Target{User: "deploy"},
			want: []string{home + "/.ssh/kh.d/web-01.example.com", home + "/.ssh/keys/deploy@web-01.example.com"}},
		// With an address, %n is the address (Ansible runs `ssh ADDRESS`): a display name
		// never reaches a file name.
		{name: "web 1 (eu)", inv: Target{Address: "10.0.0.1", User: "deploy"},
			want: []string{home + "/.ssh/kh.d/10.0.0.1", home + "/.ssh/keys/deploy@10.0.0.1"}},
		// Without one, the name is what is dialled, and is refused as an address first.
		{name: "web 1 (eu)", inv: Target{User: "deploy"},
			wantErr: []string{`web 1 (eu): address "web 1 (eu)" contains the space`}},
		{name: "../../.config/autostart/x", inv: Target{User: "deploy"},
			wantErr: []string{`address "../../.config/autostart/x" contains '/'`}},
		{name: "..", inv: Target{User: "deploy"}, wantErr: []string{"made of dots only"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveTarget(tt.name, tt.inv, cfg)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("resolved to %v, %v; want an error", got.KnownHostsFiles, got.IdentityFiles)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if files := append(got.KnownHostsFiles[:1:1], got.IdentityFiles...); !reflect.DeepEqual(files, tt.want) {
				t.Errorf("files %q; want %q", files, tt.want)
			}
		})
	}
}

func TestResolveTargetDefaults(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	got, err := ResolveTarget("h", Target{}, "none")
	if err != nil {
		t.Fatal(err)
	}
	want := Target{Name: "h", Address: "h", Port: 22, User: localUser(), StrictHostKeyChecking: "yes",
		KnownHostsFiles: []string{filepath.Join(home, ".ssh", "known_hosts"), "/etc/ssh/ssh_known_hosts"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	if _, err := ResolveTarget("h", Target{}, filepath.Join(home, "missing")); err == nil {
		t.Error("a missing -F file must be an error")
	}
}

func TestTargetHidesPassword(t *testing.T) {
	tg := Target{Name: "h", BecomePassword: "hunter2", Password: "s3cr3t-login"}
	for _, s := range []string{tg.String(), tg.GoString(), fmt.Sprintf("%v %+v %#v %s", tg, tg, tg, tg)} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "s3cr3t") {
			t.Errorf("%q shows the password", s)
		}
	}
}

func TestParseJumps(t *testing.T) {
	tests := []struct {
		in      string
		want    []Target
		wantErr bool
	}{
		{in: "bastion", want: []Target{{Name: "bastion"}}},
		{in: "admin@bastion:2200, jump2", want: []Target{{Name: "bastion", User: "admin", Port: 2200}, {Name: "jump2"}}},
		{in: "ssh://u@[::1]:22", want: []Target{{Name: "::1", User: "u", Port: 22}}},
		{in: "a,,b", wantErr: true},
		{in: "a:99999", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseJumps(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseJumps(%q) = %v, %v; want %v (err %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestResolveTargetSeesConfigChanges: a parsed ssh_config is reused only while the file is
// unchanged; an edit (even within the same second, of the same size) is read again.
func TestResolveTargetSeesConfigChanges(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config")
	for i, port := range []string{"2201", "2202", "2203"} {
		if err := os.WriteFile(cfg+".new", []byte("Host web\n  Port "+port+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cfg+".new", cfg); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := ResolveTarget("web", Target{}, cfg)
			if err != nil || strconv.Itoa(got.Port) != port {
				t.Fatalf("edit %d: port %d, %v; want %s", i, got.Port, err, port)
			}
		}
	}
}
