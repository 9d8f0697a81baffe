package inventory

import (
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"

	"github.com/runbook/runbook/inventory/vault"
)

// Values decrypted from Ansible Vault are secrets whatever their variables are named.
// They stay plain strings in the inventory (ansible_password from a vault connects like
// any other), and are known as secrets by value: every string decrypted in this process
// is kept here, and SecretValue reports it, so Redact, `runbook inventory` and the
// runbook's host.vars (engine/config.InventoryVars) hide it wherever it appears.
var vaulted = struct {
	sync.RWMutex
	m map[string]bool
}{m: map[string]bool{}}

// markVaulted records the strings in v, at any depth, as decrypted secrets.
func markVaulted(v any) {
	vaulted.Lock()
	defer vaulted.Unlock()
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > 1000 {
			return
		}
		switch x := v.(type) {
		case string:
			if x != "" {
				vaulted.m[x] = true
			}
		case []any:
			for _, e := range x {
				walk(e, depth+1)
			}
		case map[string]any:
			for _, e := range x {
				walk(e, depth+1)
			}
		}
	}
	walk(v, 0)
}

// VaultedString reports whether s was decrypted from a vault in this process.
func VaultedString(s string) bool {
	if s == "" {
		return false
	}
	vaulted.RLock()
	defer vaulted.RUnlock()
	return vaulted.m[s]
}

// vaultHelp is what a vault error tells the user to do.
const vaultHelp = "Give the vault password with --vault-password-file FILE, --vault-id LABEL@SOURCE, --ask-vault-pass or " + vault.PasswordFileEnv + "."

// decryptDiag explains a vault error at rng. The error of package vault never holds a
// password or plaintext.
func decryptDiag(rng hcl.Range, what string, err error) *hcl.Diagnostic {
	detail := fmt.Sprintf("Cannot decrypt %s: %s.", what, err)
	if strings.Contains(err.Error(), vault.ErrNoPassword.Error()) || strings.Contains(err.Error(), "which no password was given for") {
		detail += " " + vaultHelp
	}
	return errorf(rng, "Cannot decrypt vault", "%s", detail)
}

// decryptFile opens a file that is one vault envelope (a whole encrypted inventory or vars
// file). The keyring may be nil: then there is no password.
func decryptFile(filename string, src []byte, k *vault.Keyring) ([]byte, hcl.Diagnostics) {
	plain, err := k.Decrypt(src)
	if err != nil {
		return nil, hcl.Diagnostics{decryptDiag(fileRange(filename), "this file, encrypted with Ansible Vault", err)}
	}
	return plain, nil
}

// hideDecrypted replaces what diagnostics about a decrypted file's content say with where
// they are: their messages and the lines they would quote could hold its secrets.
func hideDecrypted(diags hcl.Diagnostics) hcl.Diagnostics {
	out := make(hcl.Diagnostics, 0, len(diags))
	for _, d := range diags {
		c := *d
		c.Detail = "The message is not shown: this file is encrypted with Ansible Vault, and it could quote its content. Decrypt it with ansible-vault view to see the line named."
		c.Summary += " (in an encrypted file)"
		c.Expression, c.EvalContext = nil, nil
		out = append(out, &c)
	}
	return out
}
