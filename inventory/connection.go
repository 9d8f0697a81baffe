package inventory

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Connection is how to reach a host over SSH, taken from its merged variables.
type Connection struct {
	Address      string // ansible_host; empty: ssh_config's HostName for the name, else the name
	Port         int    // ansible_port; 0 when unset
	User         string // ansible_user
	IdentityFile string // ansible_ssh_private_key_file
	ProxyJump    string // from ansible_ssh_common_args/ansible_ssh_extra_args: -o ProxyJump=, -J, or ProxyCommand ssh -W
	Password     string // ansible_password
}

// Connection reads the connection variables as Ansible's ssh connection does, including
// the older names (ansible_ssh_host, ansible_ssh_user, ansible_ssh_port, ansible_ssh_pass,
// ansible_private_key_file); where several are set, the one Ansible reads last wins.
func (h *Host) Connection() Connection {
	var c Connection
	str := func(names ...string) string {
		out := ""
		for _, n := range names {
			if v, ok := h.Vars[n]; ok && v != nil {
				out = pyStr(v)
			}
		}
		return out
	}
	if a := str("ansible_host", "ansible_ssh_host"); a != "" {
		c.Address = a
	}
	for _, n := range []string{"ansible_port", "ansible_ssh_port"} {
		if p, ok := portOf(h.Vars[n]); ok {
			c.Port = p
		}
	}
	c.User = str("ansible_user", "ansible_ssh_user")
	c.IdentityFile = str("ansible_private_key_file", "ansible_ssh_private_key_file")
	c.Password = str("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
	for _, n := range []string{"ansible_ssh_common_args", "ansible_ssh_extra_args"} {
		if v, ok := h.Vars[n].(string); ok {
			if j := proxyJump(v); j != "" {
				c.ProxyJump = j
			}
		}
	}
	return c
}

// SecretVar reports whether the variable named holds a credential: a password that
// Ansible's connections and become methods read (ansible_password, ansible_ssh_pass,
// ansible_become_password, ansible_become_pass, ansible_sudo_pass, ...), that is every
// ansible_ variable whose name ends in _pass, _password or _passphrase. Runbooks see such a
// value marked sensitive, and --graph --vars does not print it.
func SecretVar(name string) bool {
	if !strings.HasPrefix(name, "ansible_") {
		return false
	}
	for _, end := range []string{"_pass", "_password", "_passphrase"} {
		if strings.HasSuffix(name, end) {
			return true
		}
	}
	return false
}

func portOf(v any) (int, bool) {
	switch x := v.(type) {
	case int64:
		if x > 0 && x <= 65535 {
			return int(x), true
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

// SSHOptions returns the OpenSSH -o options given in ansible_ssh_common_args and
// ansible_ssh_extra_args (extra wins), keyed by lower-case option name, so the transport
// can honour UserKnownHostsFile, StrictHostKeyChecking, ProxyCommand and the like. Arguments
// that ssh itself would refuse (an unterminated quote, -o without a value) are an error
// naming the variable: ignoring them could connect without the proxy or known_hosts file
// they name.
func (h *Host) SSHOptions() (map[string]string, error) {
	out := map[string]string{}
	for _, n := range []string{"ansible_ssh_common_args", "ansible_ssh_extra_args"} {
		if v, ok := h.Vars[n].(string); ok {
			_, opts, err := sshArgs(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", n, err)
			}
			for k, val := range opts {
				out[k] = val
			}
		}
	}
	return out, nil
}

// sshArgs reads ssh command-line arguments the way ssh does: the jump host (-J, ProxyJump,
// or a ProxyCommand of the form "ssh -W") and every -o option.
func sshArgs(args string) (string, map[string]string, error) {
	opts := map[string]string{}
	toks, err := shlexSplit(args)
	if err != nil {
		return "", opts, fmt.Errorf("%q: %w", args, err)
	}
	words := make([]string, len(toks))
	for i, t := range toks {
		words[i] = t.text
	}
	out := ""
	for i := 0; i < len(words); i++ {
		w := words[i]
		var opt string
		switch {
		case w == "-J" && i+1 < len(words):
			out = words[i+1]
			i++
			continue
		case strings.HasPrefix(w, "-J") && len(w) > 2:
			out = w[2:]
			continue
		case (w == "-o" || w == "-J") && i+1 == len(words):
			return "", opts, fmt.Errorf("%q: %s needs a value", args, w)
		case w == "-o" && i+1 < len(words):
			opt = words[i+1]
			i++
		case strings.HasPrefix(w, "-o") && len(w) > 2:
			opt = w[2:]
		default:
			continue
		}
		key, val := splitSSHOption(opt)
		opts[strings.ToLower(key)] = val
		switch strings.ToLower(key) {
		case "proxyjump":
			if !strings.EqualFold(val, "none") {
				out = val
			}
		case "proxycommand":
			if j := jumpFromProxyCommand(val); j != "" {
				out = j
			}
		}
	}
	return out, opts, nil
}

func splitSSHOption(opt string) (string, string) {
	opt = strings.TrimSpace(opt)
	if k, v, ok := strings.Cut(opt, "="); ok && !strings.ContainsAny(k, " \t") {
		return strings.TrimSpace(k), strings.TrimSpace(v)
	}
	k, v, _ := strings.Cut(opt, " ")
	return k, strings.TrimSpace(v)
}

// jumpFromProxyCommand understands the common "ssh -W %h:%p [-p port] [user@]bastion".
func jumpFromProxyCommand(cmd string) string {
	toks, err := shlexSplit(cmd)
	if err != nil || len(toks) == 0 || !strings.HasSuffix(toks[0].text, "ssh") {
		return ""
	}
	var dest, port, user string
	forward := false
	for i := 1; i < len(toks); i++ {
		w := toks[i].text
		switch {
		case w == "-W" && i+1 < len(toks):
			forward = true
			i++
		case w == "-p" && i+1 < len(toks):
			port = toks[i+1].text
			i++
		case w == "-l" && i+1 < len(toks):
			user = toks[i+1].text
			i++
		case strings.HasPrefix(w, "-"):
			// options with an argument
			if len(w) == 2 && strings.Contains("bcDEeFIiJLmOoQRSw", w[1:]) && i+1 < len(toks) {
				i++
			}
		default:
			if dest == "" {
				dest = w
			}
		}
	}
	if !forward || dest == "" {
		return ""
	}
	if user != "" && !strings.Contains(dest, "@") {
		dest = user + "@" + dest
	}
	if port != "" {
		dest += ":" + port
	}
	return dest
}
