package inventory

import (
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
)

// Connection is how to reach a host over SSH, taken from its merged variables.
type Connection struct {
	Address      string // ansible_host; empty: ssh_config's HostName for the name, else the name
	Port         int    // ansible_port, else -p/-o Port in the ssh arguments; 0 when unset
	User         string // ansible_user, else -l/-o User in the ssh arguments
	IdentityFile string // ansible_ssh_private_key_file, else -i/-o IdentityFile in the ssh arguments
	// ProxyJump is from the ssh arguments: -o ProxyJump=, -J, or a ProxyCommand that only
	// runs "ssh -W %h:%p" through one jump host (jumpFromProxyCommand); "none" (a direct
	// connection, whatever ssh_config says) as given.
	ProxyJump string
	Password  string // ansible_password: the login password (never shown)

	// Become is ansible_become: Unset when the inventory does not say, so that a play's
	// or a task's become decides.
	Become         Tristate
	BecomeUser     string // ansible_become_user (or ansible_sudo_user, ansible_su_user, ...)
	BecomeMethod   string // ansible_become_method: "sudo", "su", "doas", or "" when unset
	BecomePassword string // ansible_become_password (or _pass, ansible_sudo_pass, ...; never shown)
}

// String never includes the passwords: "user@address:port", with what is unset left out.
func (c Connection) String() string {
	s := c.Address
	if c.User != "" {
		s = c.User + "@" + s
	}
	if c.Port != 0 {
		s += ":" + strconv.Itoa(c.Port)
	}
	if c.ProxyJump != "" {
		s += " via " + c.ProxyJump
	}
	return s
}

// GoString keeps %#v (and %+v through it, in tests) from printing the passwords: each
// that is set shows as ********.
func (c Connection) GoString() string {
	c.Password = strings.Repeat("*", min(len(c.Password), 1)*8)
	c.BecomePassword = strings.Repeat("*", min(len(c.BecomePassword), 1)*8)
	type plain Connection
	return fmt.Sprintf("%#v", plain(c))
}

// Format prints a Connection with any verb as String does (%v, %s, %+v, %q), and with
// %#v as GoString: no verb shows a password.
func (c Connection) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, c.GoString())
		return
	}
	fmt.Fprint(f, c.String())
}

// Tristate is a yes/no setting that an inventory may leave unset.
type Tristate int8

// The values of a Tristate.
const (
	Unset Tristate = iota
	No
	Yes
)

// IsSet reports whether the inventory gave the setting.
func (t Tristate) IsSet() bool { return t != Unset }

// Bool is the setting, false when unset.
func (t Tristate) Bool() bool { return t == Yes }

// Connection reads the connection variables as Ansible's ssh connection does, including
// the older names (ansible_ssh_host, ansible_ssh_user, ansible_ssh_port, ansible_ssh_pass,
// ansible_private_key_file); where several are set, the one Ansible reads last wins.
// Values that CheckConnection refuses are left out (a port that is not a port reads as
// unset): a caller that connects must call CheckConnection first.
func (h *Host) Connection() Connection {
	var c Connection
	str := h.lastStr
	if a := str(h.aliases("ansible_host", "ansible_ssh_host")...); a != "" {
		c.Address = a
	}
	s := h.sshSettings()
	c.ProxyJump = s.jump
	if v, ok := s.opts["port"]; ok {
		if p, ok := portOf(v.val); ok {
			c.Port = p
		}
	}
	c.User = s.opts["user"].val
	c.IdentityFile = s.opts["identityfile"].val
	c.Password = str(h.aliases("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")...)

	c.Become = h.becomeSetting()
	c.BecomeMethod = h.becomeMethod()
	m := methodName(c.BecomeMethod)
	c.BecomeUser = str("ansible_become_user", "ansible_"+m+"_user")
	c.BecomePassword = str(becomePassNames(m)...)
	return c
}

// lastStr is the value of the last of names that is set (not null), as text.
func (h *Host) lastStr(names ...string) string {
	out := ""
	for _, n := range names {
		if v, ok := h.Vars[n]; ok && v != nil {
			out = pyStr(v)
		}
	}
	return out
}

// last is the name and value of the last of names that is set (not null).
func (h *Host) last(names ...string) (string, any, bool) {
	var name string
	var val any
	found := false
	for _, n := range names {
		if v, ok := h.Vars[n]; ok && v != nil {
			name, val, found = n, v, true
		}
	}
	return name, val, found
}

// aliases adds the paramiko connection's own names for a setting when the host uses it:
// ansible_paramiko_host, _user, _pass, _password and _host_key_checking are read by that
// connection only, after the common names.
func (h *Host) aliases(names ...string) []string {
	if !h.paramiko() {
		return names
	}
	switch names[0] {
	case "ansible_host":
		return append(names, "ansible_paramiko_host")
	case "ansible_user":
		return append(names, "ansible_paramiko_user")
	case "ansible_password":
		return append(names, "ansible_paramiko_pass", "ansible_paramiko_password")
	case "ansible_host_key_checking":
		return append(names, "ansible_paramiko_host_key_checking")
	}
	return names
}

func (h *Host) paramiko() bool {
	switch c, _ := h.Vars["ansible_connection"].(string); strings.TrimPrefix(c, "ansible.builtin.") {
	case "paramiko", "paramiko_ssh":
		return true
	}
	return false
}

// becomeSetting is ansible_become read with Ansible's boolean rules; Unset when it is not
// set or is not a boolean (CheckConnection refuses that).
func (h *Host) becomeSetting() Tristate {
	v, ok := h.Vars["ansible_become"]
	if !ok || v == nil {
		return Unset
	}
	b, ok := ansibleBool(v)
	switch {
	case !ok:
		return Unset
	case b:
		return Yes
	}
	return No
}

// becomeMethod is ansible_become_method as runbook names it: "sudo", "su", "doas", "" when
// unset, or the value as written when runbook has no such method (CheckConnection refuses
// it).
func (h *Host) becomeMethod() string {
	v, ok := h.Vars["ansible_become_method"]
	if !ok || v == nil {
		return ""
	}
	s := pyStr(v)
	if m, ok := becomeMethods[s]; ok {
		return m
	}
	return s
}

// becomeMethods are the values of ansible_become_method runbook accepts, and the method
// each names: also by their fully qualified names (ansible.builtin.sudo), as
// ansible_connection accepts ansible.builtin.ssh. doas is community.general's plugin.
var becomeMethods = map[string]string{
	"sudo": "sudo", "su": "su", "doas": "doas",
	"ansible.builtin.sudo": "sudo", "ansible.builtin.su": "su", "community.general.doas": "doas",
}

// BecomeMethods are the become methods runbook has, by the names a runbook's become_method
// and the transport (transport.CheckBecomeMethod) use.
var BecomeMethods = []string{"sudo", "su", "doas"}

// methodName is the method whose own variables (ansible_sudo_pass, ansible_su_user, ...)
// count: the one given, else sudo, Ansible's default.
func methodName(m string) string {
	if _, ok := becomeMethods[m]; ok {
		return m
	}
	return "sudo"
}

// becomePassNames are the variables the become method m reads its password from, in the
// order Ansible reads them (the last one set wins).
func becomePassNames(m string) []string {
	names := []string{"ansible_become_password", "ansible_become_pass", "ansible_" + m + "_pass"}
	if m == "su" {
		names = append(names, "ansible_su_password")
	}
	return names
}

// ansibleBool reads a value as Ansible's boolean() does in strict mode.
func ansibleBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case int64:
		if x == 0 || x == 1 {
			return x == 1, true
		}
	case float64:
		if x == 0 || x == 1 {
			return x == 1, true
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "y", "yes", "on", "1", "true", "t", "1.0":
			return true, true
		case "n", "no", "off", "0", "false", "f", "0.0":
			return false, true
		}
	}
	return false, false
}

// SecretVar reports whether the variable named holds a secret, so that its value is
// marked sensitive in runbooks and printed as modules.Redacted by `runbook inventory`.
// The rule works on the name's words (split at "_", "-", "." and between a lower-case
// letter and an upper-case one, compared in lower case):
//
//   - a word that names a secret: secret(s), token(s), credential(s), privkey; a word that
//     contains password, passwd, passphrase, privatekey or apikey (pgpassword, htpasswd,
//     wireguard_privatekey); pass, pwd or pw as the last word (ansible_become_pass,
//     ldap_bind_pw);
//   - key or keys after a word that makes it key material: private, api, secret, access,
//     auth, signing, encryption, decryption, client, server, tls, ssl, cert, certificate,
//     crt, ca, master, session, shared, preshared, hmac, jwt, aes, account (ssl_cert_key,
//     ca_key, server_key);
//
// unless the name's last word says that the value only points at a secret, describes it or
// is a setting about it (secretExempt: ansible_ssh_private_key_file, vault_password_file,
// token_url, api_key_id, token_ttl, password_authentication, csrf_token_enabled) — but an
// id after secret is the secret (vault_secret_id, AppRole's). A public key is not a secret
// (public_key). Key names alone (ssh_key, host_key) are not secrets: they name public keys
// as often as private ones.
//
// Whether a value is hidden also depends on the value: see Secret.
func SecretVar(name string) bool {
	words := nameWords(name)
	if len(words) == 0 {
		return false
	}
	last := words[len(words)-1]
	if secretExempt[last] && !(last == "id" && len(words) > 1 && words[len(words)-2] == "secret") {
		return false
	}
	for i, w := range words {
		switch w {
		case "secret", "token", "credential", "credentials", "privkey", "secrets", "tokens":
			return true
		case "pass", "pwd", "pw":
			// only at the end: ansible_become_pass, db_pwd; not first_pass_done
			if i == len(words)-1 {
				return true
			}
		case "key", "keys":
			if i > 0 && keyMaterial[words[i-1]] {
				return true
			}
		}
		for _, part := range []string{"password", "passwd", "passphrase", "privatekey", "apikey"} {
			if strings.Contains(w, part) {
				return true
			}
		}
	}
	return false
}

// secretExempt are the last words of a name that make it not a secret, whatever comes
// before: what points at a secret (file, path, url, id, name, ...), describes it (type,
// length, fingerprint, expiry, ...) or is a setting about it (enabled, authentication,
// ttl, policy, ...).
var secretExempt = map[string]bool{
	// where a secret is, or whose
	"file": true, "files": true, "path": true, "dir": true, "name": true, "id": true, "user": true,
	"username": true, "url": true, "uri": true, "host": true, "env": true, "var": true,
	// what it is like
	"type": true, "length": true, "size": true, "bits": true, "method": true, "prompt": true,
	"fingerprint": true, "algorithm": true, "expiry": true, "expires": true, "expiration": true,
	// settings about it
	"enabled": true, "enable": true, "disabled": true, "disable": true, "authentication": true,
	"ttl": true, "lifetime": true, "timeout": true, "policy": true, "policies": true,
	"required": true, "rotation": true, "interval": true, "retries": true, "attempts": true,
	"version": true, "format": true, "mode": true,
}

// keyMaterial are the words that make a following key (or keys) a secret key.
var keyMaterial = map[string]bool{
	"private": true, "api": true, "secret": true, "access": true, "auth": true, "signing": true,
	"encryption": true, "decryption": true, "client": true, "server": true, "tls": true, "ssl": true,
	"cert": true, "certificate": true, "crt": true, "ca": true, "master": true, "session": true,
	"shared": true, "preshared": true, "hmac": true, "jwt": true, "aes": true, "account": true,
}

// Secret reports whether the variable named, holding v, is a secret whose value is hidden:
// a name SecretVar takes for a secret's, unless v is a boolean (true or false holds no
// secret: ssh_password_authentication, first_pass); or, whatever the name, a value that
// holds a private key (SecretValue). A null is not hidden (it holds nothing). Numbers named
// like a secret are hidden: an INI inventory types ansible_become_password=123456 as one.
func Secret(name string, v any) bool {
	return secretByName(name, v) || SecretValue(v)
}

// secretByName is Secret without looking for private keys in v.
func secretByName(name string, v any) bool {
	switch v.(type) {
	case nil, bool:
		return false
	}
	return SecretVar(name)
}

// SecretValue reports whether v holds a private key, at any depth (a string, or a list or
// mapping with such a string): PEM ("-----BEGIN ... PRIVATE KEY-----", OpenSSH's, PKCS#8's,
// PGP's "PRIVATE KEY BLOCK") or PuTTY's key files. Such a value is a secret whatever its
// variable is named. A string decrypted from Ansible Vault (VaultedString) is one too.
func SecretValue(v any) bool {
	switch x := v.(type) {
	case string:
		return privateKeyText(x) || VaultedString(x)
	case []any:
		for _, e := range x {
			if SecretValue(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if SecretValue(e) {
				return true
			}
		}
	}
	return false
}

func privateKeyText(s string) bool {
	if i := strings.Index(s, "-----BEGIN "); i >= 0 && strings.Contains(s[i:], "PRIVATE KEY") {
		return true
	}
	return strings.Contains(s, "PuTTY-User-Key-File-") && strings.Contains(s, "Private-Lines:")
}

// MentionsSecret reports whether src (an inventory file) has a word that SecretVar takes
// for a secret's name, anywhere, or a private key (SecretValue's "-----BEGIN ... PRIVATE
// KEY"): a line of it shown in an error (a syntax error, the lines around a YAML error)
// could then be that secret's value, or a line of the key.
func MentionsSecret(src []byte) bool {
	if privateKeyText(string(src)) {
		return true
	}
	start := -1
	for i := 0; i <= len(src); i++ {
		word := i < len(src) && (src[i] == '_' || src[i] == '-' || src[i] == '.' ||
			src[i] >= 'a' && src[i] <= 'z' || src[i] >= 'A' && src[i] <= 'Z' || src[i] >= '0' && src[i] <= '9')
		switch {
		case word && start < 0:
			start = i
		case !word && start >= 0:
			if i-start <= 256 && SecretVar(string(src[start:i])) {
				return true
			}
			start = -1
		}
	}
	return false
}

// nameWords splits a variable name into lower-case words (see SecretVar).
func nameWords(name string) []string {
	var words []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			words = append(words, strings.ToLower(b.String()))
			b.Reset()
		}
	}
	prevLower := false
	for _, r := range name {
		switch {
		case r == '_' || r == '-' || r == '.' || r == ' ':
			flush()
			prevLower = false
			continue
		case r >= 'A' && r <= 'Z' && prevLower:
			flush()
		}
		b.WriteRune(r)
		prevLower = r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
	}
	flush()
	return words
}

func portOf(v any) (int, bool) {
	switch x := v.(type) {
	case int64:
		if x > 0 && x <= 65535 {
			return int(x), true
		}
	case int:
		if x > 0 && x <= 65535 {
			return x, true
		}
	case float64:
		if x == math.Trunc(x) && x > 0 && x <= 65535 {
			return int(x), true
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil && n > 0 && n <= 65535 {
			return n, true
		}
	}
	return 0, false
}

// proxyJump finds the jump host in ssh arguments: -J host, -o ProxyJump=host,
// -o "ProxyJump host", or a ProxyCommand of the form "ssh ... -W %h:%p [user@]host".
func proxyJump(args string) string {
	jump, _, _ := sshArgs(args)
	return jump
}

// SSHOptions returns the OpenSSH options that the host's ssh arguments and connection
// variables give, keyed by lower-case option name, so the transport can honour
// UserKnownHostsFile, StrictHostKeyChecking, ProxyCommand and the like. As ssh reads its
// command line, the first value of an option wins, in the order Ansible's ssh connection
// writes them: ansible_ssh_args; StrictHostKeyChecking=no when ansible_host_key_checking
// is false, Port, IdentityFile, User and ConnectTimeout from ansible_port,
// ansible_ssh_private_key_file, ansible_user and ansible_timeout; then
// ansible_ssh_common_args; then ansible_ssh_extra_args. Flags are given under their
// option's name (-p as port, -J as proxyjump, -i as identityfile, -l as user). Arguments
// that ssh itself would refuse (an unterminated quote, -o without a value) are an error
// naming the variable: ignoring them could connect without the proxy or known_hosts file
// they name. Options runbook cannot honour are in the map too: CheckConnection refuses
// them.
func (h *Host) SSHOptions() (map[string]string, error) {
	s := h.sshSettings()
	if len(s.errs) > 0 {
		return nil, s.errs[0]
	}
	out := make(map[string]string, len(s.opts))
	for k, o := range s.opts {
		out[k] = o.val
	}
	return out, nil
}

// sshOpt is one option given to ssh, and where.
type sshOpt struct {
	val  string
	from string // the variable that gave it
	as   string // as written: "-o LocalForward", "-L"
	word int    // where: the option's word in the variable, from 1 (0: not from ssh arguments)
}

// sshSettings is the merge of a host's ssh arguments and connection variables, the first
// value of each option winning (see SSHOptions).
type sshSettings struct {
	opts map[string]sshOpt
	jump string
	// all is every option in the order given, duplicates included, for CheckConnection
	all  []sshArg
	errs []error
}

type sshArg struct {
	key string
	sshOpt
}

func (h *Host) sshSettings() sshSettings {
	s := sshSettings{opts: map[string]sshOpt{}}
	add := func(key string, o sshOpt) {
		s.all = append(s.all, sshArg{key, o})
		if key == "" || strings.HasPrefix(key, "-") {
			return // not an option: a word, or a flag such as -F, for CheckConnection only
		}
		// ProxyJump and ProxyCommand compete: whichever comes first wins (ssh_config(5)).
		if key == "proxyjump" || key == "proxycommand" {
			if _, ok := s.opts["proxyjump"]; ok {
				return
			}
			if _, ok := s.opts["proxycommand"]; ok {
				return
			}
		}
		if _, ok := s.opts[key]; !ok {
			s.opts[key] = o
		}
	}
	fromArgs := func(n string) {
		raw, ok := h.Vars[n]
		if !ok || raw == nil || !scalar(raw) {
			return // a list or a mapping: CheckConnection refuses it
		}
		v := pyStr(raw) // as Ansible makes text of a number or a boolean
		args, err := parseSSHArgs(v)
		if err != nil {
			s.errs = append(s.errs, &ConnError{Host: h.Name, Var: n, Msg: ": " + err.Error()})
			return
		}
		for _, a := range args {
			a.from = n
			add(a.key, a.sshOpt)
		}
	}
	fromArgs("ansible_ssh_args")
	if n, v, ok := h.last(h.aliases("ansible_host_key_checking", "ansible_ssh_host_key_checking")...); ok {
		if b, ok := ansibleBool(v); ok && !b {
			add("stricthostkeychecking", sshOpt{val: "no", from: n, as: n})
		}
	}
	if n, v, ok := h.last("ansible_port", "ansible_ssh_port"); ok {
		add("port", sshOpt{val: pyStr(v), from: n, as: n})
	}
	if n, v, ok := h.last("ansible_private_key_file", "ansible_ssh_private_key_file"); ok {
		add("identityfile", sshOpt{val: pyStr(v), from: n, as: n})
	}
	if n, v, ok := h.last(h.aliases("ansible_user", "ansible_ssh_user")...); ok {
		add("user", sshOpt{val: pyStr(v), from: n, as: n})
	}
	if n, v, ok := h.last("ansible_timeout", "ansible_ssh_timeout"); ok {
		add("connecttimeout", sshOpt{val: pyStr(v), from: n, as: n})
	}
	fromArgs("ansible_ssh_common_args")
	fromArgs("ansible_ssh_extra_args")
	// "none" is kept: it says to connect directly whatever ssh_config says, and the
	// transport reads ssh_config's ProxyJump only when the inventory gives none.
	if o, ok := s.opts["proxyjump"]; ok {
		s.jump = o.val
		if strings.EqualFold(o.val, "none") {
			s.jump = "none"
		}
	} else if o, ok := s.opts["proxycommand"]; ok {
		s.jump = jumpFromProxyCommand(o.val)
	}
	return s
}

// sshArgs reads ssh command-line arguments the way ssh does: the jump host (-J, ProxyJump,
// or a ProxyCommand of the form "ssh -W", whichever comes first) and every option, the
// first value of each winning.
func sshArgs(args string) (string, map[string]string, error) {
	h := &Host{Vars: map[string]any{"ansible_ssh_common_args": args}}
	s := h.sshSettings()
	opts := map[string]string{}
	if len(s.errs) > 0 {
		return "", opts, s.errs[0]
	}
	for k, o := range s.opts {
		opts[k] = o.val
	}
	return s.jump, opts, nil
}

// sshFlags are ssh's one-letter flags: the option each sets (with the value it sets, for
// flags without an argument), and whether it takes an argument. A flag with no option
// ("-f") is kept under its own name, for CheckConnection.
var sshFlags = map[byte]struct {
	key, val string
	arg      bool
}{
	'4': {"addressfamily", "inet", false}, '6': {"addressfamily", "inet6", false},
	'A': {"forwardagent", "yes", false}, 'a': {"forwardagent", "no", false},
	'C': {"compression", "yes", false}, 'f': {"-f", "", false}, 'G': {"-G", "", false},
	'g': {"gatewayports", "yes", false}, 'K': {"gssapidelegatecredentials", "yes", false},
	'k': {"gssapidelegatecredentials", "no", false}, 'M': {"controlmaster", "yes", false},
	'N': {"-N", "", false}, 'n': {"-n", "", false}, 'q': {"loglevel", "quiet", false},
	's': {"-s", "", false}, 'T': {"requesttty", "no", false}, 't': {"requesttty", "yes", false},
	'V': {"-V", "", false}, 'v': {"loglevel", "verbose", false}, 'X': {"forwardx11", "yes", false},
	'x': {"forwardx11", "no", false}, 'Y': {"forwardx11trusted", "yes", false}, 'y': {"-y", "", false},
	'B': {"bindinterface", "", true}, 'b': {"bindaddress", "", true}, 'c': {"ciphers", "", true},
	'D': {"dynamicforward", "", true}, 'E': {"-E", "", true}, 'e': {"escapechar", "", true},
	'F': {"-F", "", true}, 'I': {"pkcs11provider", "", true}, 'i': {"identityfile", "", true},
	'J': {"proxyjump", "", true}, 'L': {"localforward", "", true}, 'l': {"user", "", true},
	'm': {"macs", "", true}, 'O': {"-O", "", true}, 'P': {"tag", "", true}, 'p': {"port", "", true},
	'Q': {"-Q", "", true}, 'R': {"remoteforward", "", true}, 'S': {"controlpath", "", true},
	'W': {"-W", "", true}, 'w': {"tunnel", "", true},
	'o': {"", "", true},
}

// parseSSHArgs splits ssh arguments (as Ansible does, shell-style) and reads them as ssh's
// getopt does: flags may be grouped (-qC), a flag's argument may follow it in the same
// word (-p2222, -oPort=2222) or be the next word. A word that is not an option (ssh would
// take it for the host or a command) is kept as the pseudo-option "" for CheckConnection.
func parseSSHArgs(args string) ([]sshArg, error) {
	toks, err := shlexSplit(args)
	if err != nil {
		// the text is not shown: it may hold a password (sshpass -p in a ProxyCommand)
		return nil, fmt.Errorf("cannot be split as a shell splits words: %w", err)
	}
	return parseSSHWords(toks)
}

// parseSSHWords is parseSSHArgs on words already split.
func parseSSHWords(toks []shToken) ([]sshArg, error) {
	var out []sshArg
	for i := 0; i < len(toks); i++ {
		w := toks[i].text
		if len(w) < 2 || w[0] != '-' {
			out = append(out, sshArg{"", sshOpt{val: w, as: w, word: i + 1}})
			continue
		}
		word := i + 1
	letters:
		for j := 1; j < len(w); j++ {
			f, ok := sshFlags[w[j]]
			if !ok {
				out = append(out, sshArg{"-" + string(w[j]), sshOpt{as: "-" + string(w[j]), word: word}})
				continue
			}
			if !f.arg {
				out = append(out, sshArg{f.key, sshOpt{val: f.val, as: "-" + string(w[j]), word: word}})
				continue
			}
			val := w[j+1:]
			if val == "" {
				if i+1 == len(toks) {
					return nil, fmt.Errorf("-%c at the end needs a value", w[j])
				}
				i++
				val = toks[i].text
			}
			if w[j] != 'o' {
				out = append(out, sshArg{f.key, sshOpt{val: val, as: "-" + string(w[j]), word: word}})
				break letters
			}
			key, v := splitSSHOption(val)
			out = append(out, sshArg{strings.ToLower(key), sshOpt{val: v, as: "-o " + key, word: word}})
			break letters
		}
	}
	return out, nil
}

func splitSSHOption(opt string) (string, string) {
	opt = strings.TrimSpace(opt)
	if k, v, ok := strings.Cut(opt, "="); ok && !strings.ContainsAny(k, " \t") {
		return strings.TrimSpace(k), strings.TrimSpace(v)
	}
	k, v, _ := strings.Cut(opt, " ")
	return k, strings.TrimSpace(v)
}

// jumpFromProxyCommand turns a ProxyCommand that does nothing but reach the host through
// one jump host with ssh into that jump host, "[user@]host[:port]", so that the transport
// dials it itself (and shares one connection to it among the hosts behind it). That is a
// command of the form "ssh -W %h:%p [user@]host", with -p/-l (-o Port, -o User, glued or
// not) and options that change nothing about where the connection goes or how the jump
// host is verified or logged into (proxyDroppable). Any other command, "" here, is kept
// as written: the transport runs it, expanding and checking its %-tokens. That includes
// ssh with -J, -i, -F, -o UserKnownHostsFile or StrictHostKeyChecking, a -W to a fixed
// address, a destination given as an ssh:// URI or with %-tokens, and anything with shell
// syntax ($, ;, |, quotes that sh would read differently...).
func jumpFromProxyCommand(cmd string) string {
	if strings.ContainsAny(cmd, "$`\\;&|<>(){}*?[]~!#\n\r") {
		return ""
	}
	toks, err := shlexSplit(cmd)
	if err != nil || len(toks) < 2 || path.Base(toks[0].text) != "ssh" {
		return ""
	}
	args, err := parseSSHWords(toks[1:])
	if err != nil {
		return ""
	}
	var dest, port, user string
	forward := false
	for _, a := range args {
		switch {
		case a.key == "-W":
			if a.val != "%h:%p" || forward {
				return ""
			}
			forward = true
		case a.key == "":
			if dest != "" || strings.HasPrefix(a.val, "ssh://") {
				return "" // a second word is a command, which ssh refuses with -W
			}
			dest = a.val
			if i := strings.LastIndex(dest, "@"); i >= 0 {
				if user == "" {
					user = dest[:i]
				}
				dest = dest[i+1:]
			}
		case a.key == "port":
			if port == "" {
				p, ok := portOf(a.val)
				if !ok {
					return ""
				}
				port = strconv.Itoa(p)
			}
		case a.key == "user":
			if user == "" {
				user = a.val
			}
		case !proxyDroppable(a.key, a.val):
			return ""
		}
	}
	if !forward || !plainHop(dest) || user != "" && (!plainHop(user) || strings.Contains(user, ":")) {
		return ""
	}
	if strings.Contains(dest, ":") {
		if strings.Count(dest, ":") < 2 || strings.Contains(dest, "@") {
			return ""
		}
		if port != "" {
			dest = "[" + dest + "]" // an IPv6 address
		}
	}
	if user != "" {
		dest = user + "@" + dest
	}
	if port != "" {
		dest += ":" + port
	}
	return dest
}

// plainHop is a host or user name that reads as itself in a ProxyJump list: no "," (another
// hop), no "@" (a user), no %-token, no space or control character, not an option.
func plainHop(s string) bool {
	if s == "" || s[0] == '-' || strings.ContainsAny(s, ",@%/") {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// proxyDroppable reports whether an option of the ssh a ProxyCommand runs can be left out
// when runbook dials the jump host itself: the options runbook ignores for a host
// (sshOptionRules: connection sharing, keepalives, logging, terminals, compression,
// authentication methods it tries or not anyway), and -N, which -W implies.
func proxyDroppable(key, val string) bool {
	if key == "-N" {
		return true
	}
	r, ok := sshOptionRules[key]
	switch {
	case !ok:
		return false
	case r.kind == ignore:
		return true
	case r.kind == ignoreUnless:
		return r.harmless(strings.ToLower(val))
	}
	return false
}
