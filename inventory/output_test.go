package inventory

import (
	"reflect"
	"strings"
	"testing"

	"github.com/runbook/runbook/modules"
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
		// an id after secret is the secret (Vault's AppRole); other ids point at one
		"vault_secret_id": true, "approle_secret_id": true, "secret_id": true, "VAULT_SECRET_ID": true,
		"api_key_id": false, "token_id": false,
		// compound words and short forms
		"pgpassword": true, "PGPASSWORD": true, "htpasswd": true, "wireguard_privatekey": true,
		"ldap_bind_pw": true, "mysql_root_pw": true, "myApiKey": true, "db_passphrase": true,
		"pw_hash_rounds": false, "powershell_version": false,
		// key material
		"ssl_cert_key": true, "tls_cert_key": true, "ca_key": true, "server_key": true, "jwt_keys": true,
		"hmac_key": true, "storage_account_key": true, "ca_key_file": false, "server_key_path": false,
		// settings about a secret, not the secret
		"ssh_password_authentication": false, "password_authentication": false, "csrf_token_enabled": false,
		"secret_store_enabled": false, "token_ttl": false, "password_policy": false, "token_lifetime": false,
		"password_expiration": false, "vault_token_env": false,
		// first_pass: the name reads as a secret's; a boolean value is not hidden (Secret)
		"first_pass": true,
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

// Secret: a name SecretVar takes for a secret's, unless the value is a boolean or null; a
// private key whatever the name. Redact hides both, at any depth.
func TestSecretAndRedact(t *testing.T) {
	const pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
	const putty = "PuTTY-User-Key-File-3: ssh-ed25519\nPublic-Lines: 2\nAAAA\nPrivate-Lines: 1\nBBBB\n"
	for _, tt := range []struct {
		name string
		v    any
		want bool
	}{
		{"db_password", "x", true}, {"db_password", int64(123456), true}, {"db_password", 1.5, true},
		{"db_password", map[string]any{"a": "b"}, true}, {"db_password", []any{"a"}, true},
		{"db_password", true, false}, {"first_pass", false, false}, {"db_password", nil, false},
		{"ssh_password_authentication", "yes", false}, {"first_pass", "abc", true},
		{"deploy_material", pem, true}, {"motd", "x\n" + pem, true}, {"putty", putty, true},
		{"ssh_key", pem, true}, {"certs", []any{"a", map[string]any{"k": pem}}, true},
		{"ca_bundle", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", false},
		{"doc", "PRIVATE KEY files start with -----BEGIN", false},
		{"public", "ssh-ed25519 AAAAC3Nza user@host", false},
	} {
		if got := Secret(tt.name, tt.v); got != tt.want {
			t.Errorf("Secret(%q, %.30q) = %v, want %v", tt.name, tt.v, got, tt.want)
		}
	}
	in := map[string]any{
		"motd": "hello", "enabled": true, "ssh_password_authentication": "no", "first_pass": true,
		"ldap_bind_pw": "s3cr3t-pw", "app": map[string]any{"tls_cert_key": "s3cr3t-k", "port": int64(443),
			"keys": []any{"ok", pem}, "csrf_token_enabled": true, "token_ttl": int64(60)},
		"deploy": pem, "db_password": int64(123456), "n_password": nil,
	}
	out := Redact(in).(map[string]any)
	r := modules.Redacted
	want := map[string]any{
		"motd": "hello", "enabled": true, "ssh_password_authentication": "no", "first_pass": true,
		"ldap_bind_pw": r, "app": map[string]any{"tls_cert_key": r, "port": int64(443),
			"keys": []any{"ok", r}, "csrf_token_enabled": true, "token_ttl": int64(60)},
		"deploy": r, "db_password": r, "n_password": nil,
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("Redact:\n got %v\nwant %v", out, want)
	}
	if in["deploy"] != pem || in["app"].(map[string]any)["keys"].([]any)[1] != pem {
		t.Error("Redact changed its argument")
	}
}
