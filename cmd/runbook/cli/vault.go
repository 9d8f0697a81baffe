package cli

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/inventory/vault"
)

// vaultFlags adds the Ansible Vault options to a command that reads inventories. A
// password is never an argument: each option names where to read it.
func vaultFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArray("vault-password-file", nil, "read the vault password from this file's first line, or from what it prints if it is executable (repeatable; also "+vault.PasswordFileEnv+")")
	fl.Bool("ask-vault-pass", false, "ask for the vault password (without echo on a terminal; else one line of standard input)")
	fl.StringArray("vault-id", nil, "a vault password for one vault id: LABEL@FILE, LABEL@SCRIPT or LABEL@prompt (repeatable)")
}

// vaultKeyring reads the vault passwords cmd's options and RUNBOOK_VAULT_PASSWORD_FILE
// name. required says whether vault values must be decrypted when none is given: then
// the keyring is empty and every vault value is an error naming the options; otherwise
// (runbook inventory, validate) it is nil and inline values stay encrypted, as
// ansible-inventory shows them.
// The passwords are read once per invocation: the variables files and the inventories of a
// command share them, and a prompt asks once.
func (a *app) vaultKeyring(cmd *cobra.Command, required bool) (*vault.Keyring, *hcl.Diagnostic) {
	if !a.vault.read {
		a.vault.read = true
		a.vault.keys, a.vault.diag = a.readVaultKeyring(cmd, required)
	}
	return a.vault.keys, a.vault.diag
}

func (a *app) readVaultKeyring(cmd *cobra.Command, required bool) (*vault.Keyring, *hcl.Diagnostic) {
	fl := cmd.Flags()
	if fl.Lookup("vault-id") == nil {
		return nil, nil
	}
	files, _ := fl.GetStringArray("vault-password-file")
	ids, _ := fl.GetStringArray("vault-id")
	ask, _ := fl.GetBool("ask-vault-pass")
	env := a.env
	if env == nil {
		env = []string{}
	}
	opts := vault.Options{PasswordFiles: files, IDs: ids, Ask: ask, Environ: env}
	if !opts.Given() {
		if required {
			return vault.NewKeyring(), nil
		}
		return nil, nil
	}
	prompt := func(id string) ([]byte, error) {
		p := "Vault password: "
		if id != vault.DefaultID {
			p = fmt.Sprintf("Vault password (%s): ", id)
		}
		s, err := a.readPassword(p)
		return []byte(s), err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	k, err := opts.Keyring(ctx, prompt)
	if err != nil {
		return nil, diag.Errorf("Cannot read the vault password", "%s.", err)
	}
	return k, nil
}
