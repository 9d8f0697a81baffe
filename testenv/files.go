package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Files the lab writes into its directory for clients.
const (
	fileInventory    = "inventory.hcl"
	fileInventoryINI = "inventory.ini"
	fileKnownHosts   = "known_hosts"
	fileKey          = "id_ed25519"
	fileSSHConfig    = "ssh_config"
	fileForwardLog   = "forwarder.log"
)

// labFiles lists every top-level entry the lab may create in its directory,
// so teardown removes exactly those and nothing else the user keeps there.
var labFiles = []string{
	fileInventory, fileInventoryINI, fileKnownHosts, fileKey, fileKey + ".pub",
	fileSSHConfig, fileForwardLog, impairGenFile, "hosts",
}

// newKey makes an ed25519 key pair and returns the private key in OpenSSH
// PEM form and the public key in authorized_keys form (without newline).
func newKey(comment string) (priv []byte, pub string, err error) {
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate key: %w", err)
	}
	blk, err := ssh.MarshalPrivateKey(sk, comment)
	if err != nil {
		return nil, "", fmt.Errorf("encode private key: %w", err)
	}
	sp, err := ssh.NewPublicKey(pk)
	if err != nil {
		return nil, "", fmt.Errorf("encode public key: %w", err)
	}
	pub = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	if comment != "" {
		pub += " " + comment
	}
	return pem.EncodeToMemory(blk), pub, nil
}

// writeClientFiles writes inventory.hcl, inventory.ini, known_hosts and
// ssh_config for the hosts of st (the key is written earlier, at Up).
func writeClientFiles(st *State) error {
	key := filepath.Join(st.Dir, fileKey)
	kh := filepath.Join(st.Dir, fileKnownHosts)
	files := map[string]string{
		fileInventory:    inventoryHCL(st, key, kh),
		fileInventoryINI: inventoryINI(st, key, kh),
		fileKnownHosts:   knownHosts(st),
		fileSSHConfig:    sshConfig(st, key, kh),
	}
	for name, content := range files {
		if err := writeFile(filepath.Join(st.Dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func knownHosts(st *State) string {
	var b strings.Builder
	for _, h := range st.Hosts {
		// Only the key type and key: the comment of a host key is not part of
		// a known_hosts entry's meaning.
		f := strings.Fields(h.HostKey)
		fmt.Fprintf(&b, "[127.0.0.1]:%d %s %s\n", h.Port, f[0], f[1])
	}
	return b.String()
}

func commonSSHArgs(kh string) string {
	return "-o UserKnownHostsFile=" + kh + " -o StrictHostKeyChecking=yes"
}

func inventoryHCL(st *State, key, kh string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Lab inventory (tier %s), written by testenv; removed by `testenv down`.\n\n", st.Tier)
	var names []string
	for _, h := range st.Hosts {
		names = append(names, strconv.Quote(h.Name))
		var nics []string
		for _, n := range h.DataIfs {
			nics = append(nics, strconv.Quote(n))
		}
		fmt.Fprintf(&b, "host %q {\n", h.Name)
		fmt.Fprintf(&b, "  address       = %q\n", "127.0.0.1")
		fmt.Fprintf(&b, "  port          = %d\n", h.Port)
		fmt.Fprintf(&b, "  user          = %q\n", "root")
		fmt.Fprintf(&b, "  identity_file = %q\n", key)
		fmt.Fprintf(&b, "  vars = { data_nics = [%s], lab_tier = %q, mgmt_ip = %q }\n",
			strings.Join(nics, ", "), string(st.Tier), h.MgmtIP)
		b.WriteString("}\n\n")
	}
	fmt.Fprintf(&b, "group \"lab\" { hosts = [%s] }\n", strings.Join(names, ", "))
	fmt.Fprintf(&b, "group \"all\" { vars = { ansible_ssh_common_args = %q } }\n", commonSSHArgs(kh))
	return b.String()
}

func inventoryINI(st *State, key, kh string) string {
	var b strings.Builder
	b.WriteString("# Lab inventory for Ansible, written by testenv.\n[lab]\n")
	for _, h := range st.Hosts {
		fmt.Fprintf(&b, "%s ansible_host=127.0.0.1 ansible_port=%d ansible_user=root ansible_ssh_private_key_file=%s mgmt_ip=%s lab_tier=%s\n",
			h.Name, h.Port, key, h.MgmtIP, st.Tier)
	}
	fmt.Fprintf(&b, "\n[all:vars]\nansible_ssh_common_args='%s'\n", commonSSHArgs(kh))
	return b.String()
}

func sshConfig(st *State, key, kh string) string {
	var b strings.Builder
	b.WriteString("# OpenSSH client config for the lab: ssh -F <this file> lab01\n")
	for _, h := range st.Hosts {
		fmt.Fprintf(&b, "\nHost %s\n  HostName 127.0.0.1\n  Port %d\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n",
			h.Name, h.Port, key, kh)
	}
	return b.String()
}

// writeKey writes the lab's client key pair.
func writeKey(dir string) (pub string, err error) {
	priv, pub, err := newKey("runbook-lab")
	if err != nil {
		return "", err
	}
	if err := writeFile(filepath.Join(dir, fileKey), priv, 0o600); err != nil {
		return "", fmt.Errorf("write client key: %w", err)
	}
	if err := writeFile(filepath.Join(dir, fileKey+".pub"), []byte(pub+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write client key: %w", err)
	}
	return pub, nil
}

// mkdirs creates dirs with mode (MkdirAll would apply the umask).
func mkdirs(mode os.FileMode, dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, mode); err != nil {
			return err
		}
		if err := os.Chmod(d, mode); err != nil {
			return err
		}
	}
	return nil
}
