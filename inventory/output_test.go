package inventory

import (
	"strings"
	"testing"
)

// Names, keys and values from an inventory (a script's output, a CMDB field) are printed by
// --graph one per line: a newline in one cannot add a line to the tree, and controls are
// shown as escapes.
func TestGraphEscapes(t *testing.T) {
	src := `all:
  children:
    "web\n  |--@admins:":
      hosts:
        "h1\r\e]0;ok\a":
          x: "a\e[31mred\n  |  |--{ansible_become_pass = x}"
        "h2\u202eevil": {}
      vars:
        note: "line1\n  |--fakehost"
        "k\ney": {"a\nb": "c\a"}
`
	inv, diags := Parse("inv.yml", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var b strings.Builder
	if err := inv.Graph(&b, true); err != nil {
		t.Fatal(err)
	}
	want := `@all:
  |--@ungrouped:
  |--@web\n  |--@admins::
  |  |--h1\r\x1b]0;ok\x07
  |  |  |--{k\ney = {'a\nb': 'c\x07'}}
  |  |  |--{note = line1\n  |--fakehost}
  |  |  |--{x = a\x1b[31mred\n  |  |--{ansible_become_pass = x}}
  |  |--h2\u202eevil
  |  |  |--{k\ney = {'a\nb': 'c\x07'}}
  |  |  |--{note = line1\n  |--fakehost}
  |  |--{k\ney = {'a\nb': 'c\x07'}}
  |  |--{note = line1\n  |--fakehost}
`
	if got := b.String(); got != want {
		t.Errorf("Graph:\n%s\nwant:\n%s", got, want)
	}
}

func TestSecretVar(t *testing.T) {
	for name, want := range map[string]bool{
		"ansible_password": true, "ansible_ssh_pass": true, "ansible_ssh_password": true,
		"ansible_become_password": true, "ansible_become_pass": true, "ansible_sudo_pass": true,
		"ansible_su_password": true, "ansible_winrm_password": true, "ansible_httpapi_pass": true,
		"ansible_user": false, "ansible_become_user": false, "ansible_passwords_dir": false,
		"ansible_ssh_private_key_file": false, "ansible_private_key_file": false,
		"ansible_ssh_private_key_passphrase": true, "ansible_paramiko_pass": true,
		// any variable named like a secret, not only Ansible's
		"db_password": true, "password": true, "dbPassword": true, "DB_PASSWD": true, "mysql_root_pwd": true,
		"api_token": true, "vault_token": true, "github-token": true, "client_secret": true,
		"aws_secret_access_key": true, "api_key": true, "apiKey": true, "APIKEY": true,
		"ssh_private_key": true, "tls_key": true, "signing_key": true, "smtp_credentials": true,
		"secrets": true, "oauth.token": true,
		// pointers at a secret, descriptions of it, and public keys are not secrets
		"vault_password_file": false, "token_url": false, "secret_name": false, "aws_access_key_id": false,
		"ssh_key_file": false, "tls_key_path": false, "password_min_length": false, "become_password_prompt": false,
		"ssh_key": false, "public_key": false, "host_key": false, "ssh_public_key": false, "key": false,
		"first_pass_done": false, "bypass": false, "passenger_version": false, "tokenizer": false,
		"keyboard": false, "monkey": false, "private_network": false, "": false,
	} {
		if got := SecretVar(name); got != want {
			t.Errorf("SecretVar(%q) = %v, want %v", name, got, want)
		}
	}
}

// --graph --vars does not print passwords; the connection still reads them.
func TestGraphHidesPasswords(t *testing.T) {
	inv, diags := Parse("inv.ini", []byte("[web]\nw1 ansible_user=deploy ansible_password=hunter2-ssh\n\n[web:vars]\nansible_become_pass=hunter2-become\n"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var b strings.Builder
	if err := inv.Graph(&b, true); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "{ansible_password = (sensitive value)}") ||
		!strings.Contains(out, "{ansible_become_pass = (sensitive value)}") || !strings.Contains(out, "{ansible_user = deploy}") {
		t.Errorf("Graph:\n%s", out)
	}
	if h, _ := inv.Host("w1"); h.Connection().Password != "hunter2-ssh" {
		t.Errorf("Connection().Password = %q", h.Connection().Password)
	}
}
