package inventory

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/runbook/runbook/inventory/vault"
	"github.com/runbook/runbook/modules"
)

// testdata/vault was made with ansible-vault (ansible-core 2.14): hosts.yml's values with
// `ansible-vault encrypt_string` (motd with --vault-id prod@pw-prod, greeting with
// --vault-password-file pw-default), group_vars/web.yml with `ansible-vault encrypt
// --vault-password-file pw-default` and host_vars/w1.yml with `--vault-id prod@pw-prod`.

var (
	vaultDefault = vault.Secret{ID: vault.DefaultID, Password: []byte("pw-one")}
	vaultProd    = vault.Secret{ID: "prod", Password: []byte("pw-prod")}
)

var vaultPlaintexts = []string{"Motd-v12-secret", "Greeting-v11-secret", "Db-file-secret", "In-list-secret", "Hostvars-v12-secret"}

func TestVaultInventory(t *testing.T) {
	inv, diags := LoadWith(context.Background(), LoadOptions{Vault: vault.NewKeyring(vaultDefault, vaultProd)}, "testdata/vault/hosts.yml")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	h, _ := inv.Host("w1")
	want := map[string]any{
		"motd": "Motd-v12-secret", "greeting": "Greeting-v11-secret", "plain": "hello",
		"db_conn": "Db-file-secret", "port": int64(5432), "nested": []any{"In-list-secret"},
		"host_note": "Hostvars-v12-secret",
	}
	for k, v := range want {
		if got := h.Vars[k]; pyStr(got) != pyStr(v) {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	for _, s := range vaultPlaintexts {
		if !VaultedString(s) {
			t.Errorf("%q is not known as decrypted", s)
		}
	}
	if VaultedString("hello") {
		t.Error(`"hello", not encrypted, is taken for a secret`)
	}
	out, err := inv.HostJSON("w1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range vaultPlaintexts {
		if strings.Contains(string(out), s) {
			t.Errorf("--host output shows %q: %s", s, out)
		}
	}
	if !strings.Contains(string(out), `"motd": "`+modules.Redacted+`"`) || !strings.Contains(string(out), `"plain": "hello"`) {
		t.Errorf("--host output: %s", out)
	}
	list, _ := inv.ListJSON()
	var graph strings.Builder
	_ = inv.Graph(&graph, true)
	for _, s := range vaultPlaintexts {
		if strings.Contains(string(list), s) || strings.Contains(graph.String(), s) {
			t.Errorf("--list or --graph shows %q", s)
		}
	}
}

// Errors are located (file and line) and never hold a password or plaintext.
func TestVaultInventoryErrors(t *testing.T) {
	tmp := t.TempDir()
	// an inventory whose group_vars file was altered after encryption
	copyTree(t, "testdata/vault", tmp)
	gv := filepath.Join(tmp, "group_vars", "web.yml")
	b, _ := os.ReadFile(gv)
	lines := strings.Split(string(b), "\n")
	lines[3] = flipHex(lines[3])
	os.WriteFile(gv, []byte(strings.Join(lines, "\n")), 0o600)

	// an inventory without vault values of its own, beside an encrypted group_vars file
	plainDir := t.TempDir()
	copyTree(t, "testdata/vault/group_vars", filepath.Join(plainDir, "group_vars"))
	os.WriteFile(filepath.Join(plainDir, "hosts.yml"), []byte("web:\n  hosts:\n    w1:\n"), 0o600)

	tests := []struct {
		name    string
		path    string
		keys    *vault.Keyring
		where   string // file:line
		message string
	}{
		{"wrong password", "testdata/vault/hosts.yml", vault.NewKeyring(vault.Secret{ID: "prod", Password: []byte("nope")}, vault.Secret{ID: vault.DefaultID, Password: []byte("pw-one")}),
			"testdata/vault/hosts.yml:4", "wrong password"},
		{"missing id", "testdata/vault/hosts.yml", vault.NewKeyring(vaultDefault),
			"testdata/vault/hosts.yml:4", `vault id "prod", which no password was given for`},
		{"no password", "testdata/vault/hosts.yml", vault.NewKeyring(),
			"testdata/vault/hosts.yml:4", "--vault-password-file"},
		{"whole file without its password", filepath.Join(plainDir, "hosts.yml"), vault.NewKeyring(vaultProd),
			filepath.Join(plainDir, "group_vars", "web.yml") + ":1", "this file, encrypted with Ansible Vault: no vault password given decrypts it"},
		{"tampered file", filepath.Join(tmp, "hosts.yml"), vault.NewKeyring(vaultDefault, vaultProd),
			gv + ":1", "altered"},
		{"whole file, no keyring", "testdata/vault/hosts.yml", nil,
			"testdata/vault/group_vars/web.yml:1", "no vault password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, diags := LoadWith(context.Background(), LoadOptions{Vault: tt.keys}, tt.path)
			if !diags.HasErrors() || inv != nil {
				t.Fatalf("no error")
			}
			found := false
			for _, d := range diags {
				text := d.Summary + " " + d.Detail
				for _, s := range append(vaultPlaintexts, "pw-one", "pw-prod", "nope") {
					if strings.Contains(text, s) {
						t.Errorf("the error holds %q: %s", s, text)
					}
				}
				if d.Subject != nil && d.Subject.Filename+":"+itoa(d.Subject.Start.Line) == tt.where && strings.Contains(text, tt.message) {
					found = true
				}
			}
			if !found {
				t.Errorf("no error at %s saying %q: %s", tt.where, tt.message, diags.Error())
			}
		})
	}
}

// Without a keyring, inline values stay encrypted the way ansible-inventory --list
// prints them.
func TestVaultInlineWithoutKeyring(t *testing.T) {
	src, _ := os.ReadFile("testdata/vault/hosts.yml")
	inv, diags := Parse("hosts.yml", src)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	h, _ := inv.Host("w1")
	m, ok := h.Vars["motd"].(map[string]any)
	if !ok || !strings.HasPrefix(pyStr(m["__ansible_vault"]), "$ANSIBLE_VAULT;1.2;AES256;prod\n") {
		t.Fatalf("motd = %#v", h.Vars["motd"])
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func flipHex(s string) string {
	b := []byte(s)
	if b[10] == '3' {
		b[10] = '6'
	} else {
		b[10] = '3'
	}
	return string(b)
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
