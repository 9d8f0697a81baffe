package inventory

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/runbook/runbook/internal/termsafe"
)

// ConnError is a connection variable of a host that runbook cannot honour. Its message
// names the host and the variable, and the value only when it is not a secret.
type ConnError struct {
	Host string
	Var  string // the variable, e.g. ansible_connection
	// Msg says what is wrong and why, after the variable: "=winrm is not supported
	// (runbook connects over SSH)" or ": -L (LocalForward) is not supported: ...".
	Msg string
}

func (e *ConnError) Error() string {
	return "inventory: host " + termsafe.Line(e.Host) + ": " + e.Var + e.Msg
}

// CheckConnection returns every connection variable of the host that runbook would not
// honour as Ansible does, each as a *ConnError: a connection other than SSH, a become
// method other than sudo, su and doas, ssh arguments that change security or routing in a
// way runbook cannot follow (a port forwarding, other ciphers, another ssh_config), a
// value of the wrong kind (a port that is not a port). Connecting to such a host would do
// something other than what the inventory says, so it must not be touched: callers check
// every host of a run before connecting to any. Variables runbook ignores are harmless
// (docs/inventory.md lists them and why). A secret's value never appears in a message.
func (h *Host) CheckConnection() []error {
	var errs []error
	refuse := func(name, format string, args ...any) {
		errs = append(errs, &ConnError{Host: h.Name, Var: name, Msg: fmt.Sprintf(format, args...)})
	}
	shown := func(v any) string { return showValue(pyStr(v)) }
	get := func(name string) (any, bool) {
		v, ok := h.Vars[name]
		return v, ok && v != nil
	}

	if v, ok := get("ansible_connection"); ok {
		switch s := pyStr(v); strings.TrimPrefix(s, "ansible.builtin.") {
		case "ssh", "smart", "paramiko", "paramiko_ssh":
		default:
			refuse("ansible_connection", "=%s is not supported (runbook connects over SSH)", shown(v))
		}
	}
	for _, n := range []string{"ansible_port", "ansible_ssh_port"} {
		if v, ok := get(n); ok {
			if _, ok := portOf(v); !ok {
				refuse(n, "=%s is not a port number (1-65535)", shown(v))
			}
		}
	}
	for _, n := range []string{"ansible_timeout", "ansible_ssh_timeout"} {
		if v, ok := get(n); ok {
			if _, ok := seconds(pyStr(v)); !ok {
				refuse(n, "=%s is not a whole number of seconds", shown(v))
			}
		}
	}
	for _, n := range []string{"ansible_become", "ansible_host_key_checking", "ansible_ssh_host_key_checking", "ansible_paramiko_host_key_checking"} {
		if v, ok := get(n); ok {
			if _, ok := ansibleBool(v); !ok {
				refuse(n, "=%s is not a boolean (true or false, yes or no)", shown(v))
			}
		}
	}
	// Strings that must be strings: a list or a mapping here is a mistake, not a name. A
	// number or a boolean reads as its text, as in Ansible.
	for _, n := range []string{"ansible_host", "ansible_ssh_host", "ansible_user", "ansible_ssh_user",
		"ansible_private_key_file", "ansible_ssh_private_key_file", "ansible_password", "ansible_ssh_pass",
		"ansible_ssh_password", "ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args"} {
		if v, ok := get(n); ok && !scalar(v) {
			refuse(n, " is a %s, not a string", kindOf(v))
		}
	}
	// Become names and passwords: a number reads as its text, as in Ansible (an INI
	// inventory types ansible_become_password=123456 as one); a list or a mapping is a
	// mistake. The value is never shown, only its kind.
	for _, n := range []string{"ansible_become_user", "ansible_become_method", "ansible_become_password", "ansible_become_pass"} {
		if v, ok := get(n); ok && !scalar(v) {
			refuse(n, " is a %s, not a string", kindOf(v))
		}
	}

	method := "sudo"
	if v, ok := get("ansible_become_method"); ok {
		if m, ok := becomeMethods[pyStr(v)]; ok {
			method = m
		} else {
			refuse("ansible_become_method", "=%s is not supported (runbook becomes another user with sudo, su or doas)", shown(v))
		}
	}
	// The method's own names (ansible_sudo_pass, ansible_su_user, ...) are read after the
	// common ones (Connection); the same kinds apply.
	for _, n := range []string{"ansible_" + method + "_user", "ansible_" + method + "_pass", "ansible_" + method + "_password"} {
		if v, ok := get(n); ok && !scalar(v) {
			refuse(n, " is a %s, not a string", kindOf(v))
		}
	}
	// The user to become, from whichever name gives it: spaces around it are a mistake
	// (sudo -u " root" is no user), found before any host is touched rather than when a
	// task first becomes.
	if n, v, ok := h.last("ansible_become_user", "ansible_"+method+"_user"); ok && scalar(v) {
		if u := pyStr(v); strings.TrimSpace(u) != u {
			refuse(n, " %s has spaces around the name", shown(v))
		}
	}
	// runbook runs the method by its name, as the host's PATH finds it: it cannot run a
	// program at a given path, and it cannot know before connecting whether a path such as
	// /usr/bin/sudo is the one PATH finds. Accepting the path would ignore it silently
	// wherever it is not.
	for _, n := range []string{"ansible_become_exe", "ansible_" + method + "_exe"} {
		v, ok := get(n)
		switch exe := pyStr(v); {
		case !ok || exe == method:
		case path.Base(exe) == method:
			refuse(n, "=%s is not supported: runbook runs %s by name, as the host's PATH finds it, and cannot run it from a given path (leave %s out if that is the one PATH finds)", shown(v), method, n)
		default:
			refuse(n, "=%s is not supported (runbook runs %s as the host's PATH finds it, not another program)", shown(v), method)
		}
	}
	for _, n := range []string{"ansible_become_flags", "ansible_" + method + "_flags"} {
		if v, ok := get(n); ok {
			if f := strings.Join(strings.Fields(pyStr(v)), " "); f != "" && !(method == "sudo" && f == "-H -S -n") {
				refuse(n, "=%s is not supported (runbook runs %s with flags of its own; only Ansible's default for sudo, \"-H -S -n\", is accepted)", shown(v), method)
			}
		}
	}
	if v, ok := get("ansible_shell_type"); ok && pyStr(v) != "sh" {
		refuse("ansible_shell_type", "=%s is not supported (runbook's commands need a POSIX shell: sh)", shown(v))
	}
	if v, ok := get("ansible_ssh_executable"); ok && path.Base(pyStr(v)) != "ssh" {
		refuse("ansible_ssh_executable", "=%s is not supported (runbook speaks SSH itself and runs no ssh program)", shown(v))
	}
	if _, ok := get("ansible_ssh_pkcs11_provider"); ok {
		refuse("ansible_ssh_pkcs11_provider", " is not supported (runbook cannot use keys on PKCS#11 tokens; load them into ssh-agent)")
	}

	s := h.sshSettings()
	errs = append(errs, s.errs...)
	for _, a := range s.all {
		if a.as == a.from {
			continue // from a variable such as ansible_port, checked above
		}
		if msg := checkSSHOption(a.key, a.val); msg != "" {
			if !strings.HasPrefix(msg, "=") {
				msg = " " + msg
			}
			refuse(a.from, ": %s%s", optionLabel(a), msg)
		}
	}
	// The transport keeps a login password from a host whose key it does not verify.
	if n, _, ok := h.last(h.aliases("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")...); ok {
		if o, ok := s.opts["stricthostkeychecking"]; ok && is("no", "off", "false")(strings.ToLower(o.val)) {
			refuse(n, " is not sent to a host whose key is not verified, and %s turns host key checking off: use StrictHostKeyChecking=accept-new (it verifies every key after the first)", o.from)
		}
	}
	// Two keys would both be offered by ssh; runbook tries one from the inventory.
	first := map[string]string{}
	for _, a := range s.all {
		if a.key != "identityfile" {
			continue
		}
		if f, ok := first[a.key]; ok && f != a.val {
			refuse(a.from, ": %s names a second key file; runbook takes one key file from the inventory (give the others in ssh_config, or load them into ssh-agent)", optionLabel(a))
			continue
		}
		first[a.key] = a.val
	}
	return errs
}

// optionLabel names an option as it was written: "-L (LocalForward)", "-o LocalForward".
func optionLabel(a sshArg) string {
	if a.as == "" || a.as == a.from {
		return a.from
	}
	if a.key == "" {
		return fmt.Sprintf("the %s word", ordinal(a.word))
	}
	if _, known := sshOptionRules[a.key]; !known && strings.HasPrefix(a.as, "-o ") {
		// an option runbook does not know is named by where it is, not by its text
		return fmt.Sprintf("the -o in the %s word", ordinal(a.word))
	}
	if strings.HasPrefix(a.as, "-o ") || strings.HasPrefix(a.key, "-") {
		return termsafe.Line(a.as)
	}
	return fmt.Sprintf("%s (%s)", a.as, optionNames[a.key])
}

// checkSSHOption says why runbook cannot honour an ssh option, or "" when it honours it or
// may ignore it (see sshOptionRules). It never quotes the value: ssh arguments can hold a
// password (a ProxyCommand running sshpass -p), and a value split the wrong way round is
// anywhere.
func checkSSHOption(key, val string) string {
	r, ok := sshOptionRules[key]
	if !ok {
		if key == "" {
			return "is not an option (ssh would take it for the host or a command)"
		}
		return "is not supported (runbook does not know this ssh option)"
	}
	switch r.kind {
	case honour:
		if r.check != nil {
			return r.check(val)
		}
	case ignore:
	case ignoreUnless:
		if !r.harmless(strings.ToLower(val)) {
			return "is not supported: " + r.why
		}
	case refuseAlways:
		return "is not supported: " + r.why
	}
	return ""
}

type ruleKind int

const (
	honour ruleKind = iota
	ignore
	ignoreUnless // harmless for some values, refused for the others
	refuseAlways
)

type optionRule struct {
	kind     ruleKind
	check    func(val string) string // honour: "" or why the value is wrong
	harmless func(val string) bool   // ignoreUnless
	why      string                  // refused: why
}

func is(vals ...string) func(string) bool {
	return func(v string) bool {
		for _, x := range vals {
			if v == x {
				return true
			}
		}
		return false
	}
}

// sshOptionRules decides, per ssh option (lower-case name; flags without an option under
// "-f", ...), whether runbook honours it, may ignore it (its effect does not apply to how
// runbook connects: connection sharing, logging, compression, terminals), or refuses it
// (it would change security or routing in a way runbook does not follow). An option not
// listed is refused. docs/inventory.md has the same table.
var sshOptionRules = map[string]optionRule{
	// honoured: inventory.Connection and engine/remote map them to the transport's target
	"proxyjump":             {kind: honour},
	"proxycommand":          {kind: honour},
	"userknownhostsfile":    {kind: honour},
	"stricthostkeychecking": {kind: honour, check: oneOf("yes", "ask", "accept-new", "no", "off")},
	"identitiesonly":        {kind: honour, check: oneOf("yes", "no")},
	"identityfile":          {kind: honour},
	"identityagent":         {kind: honour},
	"connecttimeout": {kind: honour, check: func(v string) string {
		if _, ok := seconds(v); !ok {
			return "is not a whole number of seconds"
		}
		return ""
	}},
	"port": {kind: honour, check: func(v string) string {
		if _, ok := portOf(v); !ok {
			return "is not a port number (1-65535)"
		}
		return ""
	}},
	"user": {kind: honour},
	"hostname": {kind: honour, check: func(v string) string {
		if strings.Contains(v, "%") {
			return "with %-tokens is not supported (give the address itself, or use ssh_config)"
		}
		return ""
	}},

	// ignored: they change nothing runbook does (it shares one connection per host itself,
	// sends its own keepalives, never forwards X11, logs nothing of ssh's)
	"controlmaster": {kind: ignore}, "controlpersist": {kind: ignore}, "controlpath": {kind: ignore},
	"serveraliveinterval": {kind: ignore}, "serveralivecountmax": {kind: ignore}, "tcpkeepalive": {kind: ignore},
	"compression": {kind: ignore}, "loglevel": {kind: ignore}, "logverbose": {kind: ignore}, "syslogfacility": {kind: ignore},
	"batchmode": {kind: ignore}, "checkhostip": {kind: ignore}, "visualhostkey": {kind: ignore},
	"hashknownhosts": {kind: ignore}, "updatehostkeys": {kind: ignore}, "connectionattempts": {kind: ignore},
	"forwardx11": {kind: ignore}, "forwardx11trusted": {kind: ignore}, "forwardx11timeout": {kind: ignore},
	"clearallforwardings": {kind: ignore}, "exitonforwardfailure": {kind: ignore}, "requesttty": {kind: ignore},
	"escapechar": {kind: ignore}, "addkeystoagent": {kind: ignore}, "numberofpasswordprompts": {kind: ignore},
	"preferredauthentications": {kind: ignore}, "passwordauthentication": {kind: ignore},
	"kbdinteractiveauthentication": {kind: ignore}, "challengeresponseauthentication": {kind: ignore},
	"kbdinteractivedevices": {kind: ignore}, "pubkeyauthentication": {kind: ignore},
	"verifyhostkeydns": {kind: ignore}, "ipqos": {kind: ignore}, "rekeylimit": {kind: ignore},
	"gatewayports": {kind: ignore}, "permitlocalcommand": {kind: ignore}, "tag": {kind: ignore},
	"streamlocalbindmask": {kind: ignore}, "streamlocalbindunlink": {kind: ignore},
	"enableescapecommandline": {kind: ignore}, "obscurekeystroketiming": {kind: ignore},
	"-n": {kind: ignore}, "-y": {kind: ignore}, "-E": {kind: ignore},

	// ignored for the harmless values only
	"forwardagent":              {kind: ignoreUnless, harmless: is("no"), why: "runbook never forwards the agent (tasks that need it on the host cannot have it)"},
	"gssapiauthentication":      {kind: ignoreUnless, harmless: is("no"), why: "runbook cannot log in with Kerberos (GSSAPI)"},
	"gssapidelegatecredentials": {kind: ignoreUnless, harmless: is("no"), why: "runbook cannot log in with Kerberos (GSSAPI)"},
	"hostbasedauthentication":   {kind: ignoreUnless, harmless: is("no"), why: "runbook cannot log in with host-based authentication"},
	"nohostauthenticationforlocalhost": {kind: ignoreUnless, harmless: is("no"),
		why: "runbook verifies every host key, localhost's too"},
	"addressfamily": {kind: ignoreUnless, harmless: is("any"),
		why: "runbook dials the address as it resolves, over IPv4 or IPv6 (give an address of the family in ansible_host)"},
	"canonicalizehostname": {kind: ignoreUnless, harmless: is("no", "none"),
		why: "runbook does not canonicalize host names (give the full name in ansible_host, or use ssh_config)"},

	// refused: runbook cannot do what they ask, and connecting without it is not what the
	// inventory says
	"localforward":                {kind: refuseAlways, why: "runbook opens no port forwardings"},
	"remoteforward":               {kind: refuseAlways, why: "runbook opens no port forwardings"},
	"dynamicforward":              {kind: refuseAlways, why: "runbook opens no port forwardings"},
	"tunnel":                      {kind: refuseAlways, why: "runbook opens no tunnels"},
	"tunneldevice":                {kind: refuseAlways, why: "runbook opens no tunnels"},
	"bindaddress":                 {kind: refuseAlways, why: "runbook does not choose the local address it connects from"},
	"bindinterface":               {kind: refuseAlways, why: "runbook does not choose the local address it connects from"},
	"ciphers":                     {kind: refuseAlways, why: "runbook uses its own algorithm lists and cannot narrow or widen them per host"},
	"macs":                        {kind: refuseAlways, why: "runbook uses its own algorithm lists and cannot narrow or widen them per host"},
	"kexalgorithms":               {kind: refuseAlways, why: "runbook uses its own algorithm lists and cannot narrow or widen them per host"},
	"hostkeyalgorithms":           {kind: refuseAlways, why: "runbook asks for the key types known_hosts has and cannot narrow or widen them per host"},
	"pubkeyacceptedalgorithms":    {kind: refuseAlways, why: "runbook uses its own algorithm lists and cannot narrow or widen them per host"},
	"pubkeyacceptedkeytypes":      {kind: refuseAlways, why: "runbook uses its own algorithm lists and cannot narrow or widen them per host"},
	"casignaturealgorithms":       {kind: refuseAlways, why: "runbook uses its own algorithm lists and cannot narrow or widen them per host"},
	"hostbasedacceptedalgorithms": {kind: refuseAlways, why: "runbook cannot log in with host-based authentication"},
	"globalknownhostsfile":        {kind: refuseAlways, why: "give it in ssh_config, where runbook reads it"},
	"hostkeyalias":                {kind: refuseAlways, why: "give it in ssh_config (it changes which known_hosts entry verifies the host)"},
	"knownhostscommand":           {kind: refuseAlways, why: "runbook runs no command to find host keys"},
	"certificatefile":             {kind: refuseAlways, why: "give it in ssh_config"},
	"pkcs11provider":              {kind: refuseAlways, why: "runbook cannot use keys on PKCS#11 tokens; load them into ssh-agent"},
	"securitykeyprovider":         {kind: refuseAlways, why: "runbook cannot use security keys directly; load them into ssh-agent"},
	"localcommand":                {kind: refuseAlways, why: "runbook runs no local command after connecting"},
	"remotecommand":               {kind: refuseAlways, why: "runbook runs its own commands on the host"},
	"sessiontype":                 {kind: refuseAlways, why: "runbook runs its own commands on the host"},
	"stdinnull":                   {kind: refuseAlways, why: "runbook runs its own commands on the host"},
	"forkafterauthentication":     {kind: refuseAlways, why: "runbook runs its own commands on the host"},
	"sendenv":                     {kind: refuseAlways, why: "runbook sends no environment variables to the host (set them in the task)"},
	"setenv":                      {kind: refuseAlways, why: "runbook sends no environment variables to the host (set them in the task)"},
	"proxyusefdpass":              {kind: refuseAlways, why: "runbook talks to a ProxyCommand over its standard input and output only"},
	"include":                     {kind: refuseAlways, why: "give it in ssh_config"},
	"match":                       {kind: refuseAlways, why: "give it in ssh_config"},
	"host":                        {kind: refuseAlways, why: "give it in ssh_config"},
	"-F":                          {kind: refuseAlways, why: "runbook reads one ssh_config for the whole run (runbook's --ssh-config)"},
	"-f":                          {kind: refuseAlways, why: "runbook runs its own commands on the host"},
	"-N":                          {kind: refuseAlways, why: "runbook runs its own commands on the host"},
	"-s":                          {kind: refuseAlways, why: "runbook runs its own commands on the host"},
	"-W":                          {kind: refuseAlways, why: "give the jump host with -J or ProxyJump"},
	"-G":                          {kind: refuseAlways, why: "it makes ssh print its configuration instead of connecting"},
	"-V":                          {kind: refuseAlways, why: "it makes ssh print its version instead of connecting"},
	"-Q":                          {kind: refuseAlways, why: "it makes ssh print what it supports instead of connecting"},
	"-O":                          {kind: refuseAlways, why: "it controls a running ssh instead of connecting"},
}

// optionNames are the options that flags set, as ssh_config(5) spells them.
var optionNames = map[string]string{
	"addressfamily": "AddressFamily", "forwardagent": "ForwardAgent", "compression": "Compression",
	"gatewayports": "GatewayPorts", "gssapidelegatecredentials": "GSSAPIDelegateCredentials",
	"controlmaster": "ControlMaster", "loglevel": "LogLevel", "requesttty": "RequestTTY",
	"forwardx11": "ForwardX11", "forwardx11trusted": "ForwardX11Trusted", "bindinterface": "BindInterface",
	"bindaddress": "BindAddress", "ciphers": "Ciphers", "dynamicforward": "DynamicForward",
	"escapechar": "EscapeChar", "pkcs11provider": "PKCS11Provider", "identityfile": "IdentityFile",
	"proxyjump": "ProxyJump", "localforward": "LocalForward", "user": "User", "macs": "MACs",
	"tag": "Tag", "port": "Port", "remoteforward": "RemoteForward", "controlpath": "ControlPath",
	"tunnel": "Tunnel",
}

func oneOf(vals ...string) func(string) string {
	return func(v string) string {
		if is(vals...)(strings.ToLower(v)) {
			return ""
		}
		return "is not one of " + strings.Join(vals, ", ")
	}
}

// seconds reads a whole, positive number of seconds.
func seconds(s string) (int, bool) {
	s = strings.TrimSpace(s)
	n := 0
	for i, c := range s {
		if c < '0' || c > '9' || i > 6 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n > 0
}

// ordinal is 1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, ... 21st.
func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}

// showValue quotes a value for a message: on one line, and at most 80 bytes of it.
func showValue(s string) string {
	if len(s) > 80 {
		s = strings.ToValidUTF8(s[:80], "") + "…"
	}
	return fmt.Sprintf("%q", termsafe.Line(s))
}

func scalar(v any) bool {
	switch v.(type) {
	case []any, map[string]any:
		return false
	}
	return true
}

func kindOf(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case map[string]any:
		return "mapping"
	case bool:
		return "boolean"
	case string:
		return "string"
	}
	return "number"
}

// ignoredVars are the connection variables of Ansible's ssh connection and become
// plugins that runbook ignores, each because it changes nothing about how runbook connects
// or what it runs (docs/inventory.md says why for each). Variables of Ansible's other
// connection plugins (ansible_winrm_*, ansible_docker_*, ...) are ignored as Ansible's ssh
// connection ignores them: a host that selects such a connection is refused.
var ignoredVars = []string{
	"ansible_python_interpreter", "ansible_shell_executable", "ansible_pipelining", "ansible_ssh_pipelining",
	"ansible_scp_extra_args", "ansible_sftp_extra_args", "ansible_scp_executable", "ansible_sftp_executable",
	"ansible_ssh_transfer_method", "ansible_scp_if_ssh", "ansible_sftp_batch_mode", "ansible_ssh_retries",
	"ansible_ssh_use_tty", "ansible_control_path", "ansible_control_path_dir", "ansible_sshpass_prompt",
	"ansible_remote_tmp", "ansible_async_dir", "ansible_module_compression", "ansible_paramiko_use_rsa_sha",
	"ansible_su_prompt_l10n",
}
