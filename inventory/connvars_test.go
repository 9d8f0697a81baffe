package inventory

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every connection variable runbook cannot honour is refused with an error naming the host
// and the variable; what it honours or may ignore passes; a secret's value never shows.
func TestCheckConnection(t *testing.T) {
	tests := []struct {
		vars map[string]any
		want []string // one regexp per error, in order; none: the host passes
	}{
		{vars: map[string]any{}},
		// honoured
		{vars: map[string]any{"ansible_host": "10.0.0.1", "ansible_port": "2222", "ansible_user": "u",
			"ansible_password": "pw", "ansible_ssh_private_key_file": "~/.ssh/k", "ansible_connection": "ssh",
			"ansible_become": "yes", "ansible_become_user": "svc", "ansible_become_method": "su",
			"ansible_become_password": "s3cr3t", "ansible_timeout": int64(20), "ansible_host_key_checking": true,
			"ansible_shell_type": "sh", "ansible_ssh_executable": "/usr/bin/ssh", "ansible_become_exe": "su"}},
		{vars: map[string]any{"ansible_connection": "smart"}},
		{vars: map[string]any{"ansible_connection": "ansible.builtin.paramiko_ssh"}},
		{vars: map[string]any{"ansible_become_method": "doas"}},
		{vars: map[string]any{"ansible_become_method": "sudo", "ansible_become_flags": "-H  -S -n"}},
		// another method's own variables are ignored, as Ansible ignores them
		{vars: map[string]any{"ansible_become_method": "sudo", "ansible_su_pass": "s3cr3t-su", "ansible_doas_user": "x"}},
		{vars: map[string]any{"ansible_ssh_common_args": `-J b -o StrictHostKeyChecking=accept-new -o "UserKnownHostsFile /a /b" -o IdentitiesOnly=yes -p 22 -l u -i k -o ConnectTimeout=5 -o HostName=10.1.1.1 -o IdentityAgent=none`}},
		// ignored: harmless
		{vars: map[string]any{"ansible_ssh_args": "-C -o ControlMaster=auto -o ControlPersist=60s",
			"ansible_ssh_extra_args":     "-q -vvv -tt -o ServerAliveInterval=30 -o ForwardAgent=no -o LogLevel=ERROR -o AddressFamily=any -a -x",
			"ansible_python_interpreter": "/usr/bin/python3", "ansible_pipelining": true, "ansible_scp_extra_args": "-l 8192",
			"ansible_ssh_retries": int64(3), "ansible_winrm_transport": "ntlm"}},
		// refused: another connection, an unknown become method, values of the wrong kind
		{vars: map[string]any{"ansible_connection": "winrm"},
			want: []string{`^inventory: host h: ansible_connection="winrm" is not supported \(runbook connects over SSH\)$`}},
		{vars: map[string]any{"ansible_connection": "local"}, want: []string{`ansible_connection="local" is not supported`}},
		{vars: map[string]any{"ansible_connection": "community.docker.docker"}, want: []string{`ansible_connection="community.docker.docker"`}},
		{vars: map[string]any{"ansible_become_method": "pbrun"},
			want: []string{`^inventory: host h: ansible_become_method="pbrun" is not supported \(runbook becomes another user with sudo, su or doas\)$`}},
		{vars: map[string]any{"ansible_become_method": "SUDO"}, want: []string{`ansible_become_method="SUDO" is not supported`}},
		// fully qualified names, as for ansible_connection
		{vars: map[string]any{"ansible_become_method": "ansible.builtin.sudo", "ansible_become_exe": "sudo"}},
		{vars: map[string]any{"ansible_become_method": "ansible.builtin.su", "ansible_su_exe": "su", "ansible_su_user": "op"}},
		{vars: map[string]any{"ansible_become_method": "community.general.doas"}},
		{vars: map[string]any{"ansible_become_method": "ansible.builtin.pbrun"}, want: []string{`ansible_become_method="ansible.builtin.pbrun" is not supported`}},
		{vars: map[string]any{"ansible_become_method": "ansible.builtin.doas"}, want: []string{`ansible_become_method="ansible.builtin.doas" is not supported`}},
		// a path is refused, with what to do when it is PATH's own
		{vars: map[string]any{"ansible_become_exe": "/usr/bin/sudo"},
			want: []string{`^inventory: host h: ansible_become_exe="/usr/bin/sudo" is not supported: runbook runs sudo by name, as the host's PATH finds it, and cannot run it from a given path \(leave ansible_become_exe out if that is the one PATH finds\)$`}},
		{vars: map[string]any{"ansible_become_method": "ansible.builtin.su", "ansible_su_exe": "/bin/su"}, want: []string{`ansible_su_exe="/bin/su" is not supported: runbook runs su by name`}},
		// the method's own names are read after the common ones; numbers read as text
		{vars: map[string]any{"ansible_sudo_pass": "s3cr3t-sudo", "ansible_sudo_user": "svc"}},
		{vars: map[string]any{"ansible_become_method": "su", "ansible_su_password": "s3cr3t-su"}},
		{vars: map[string]any{"ansible_become_password": int64(123456), "ansible_become_user": int64(0)}},
		// spaces around the user to become, from whichever name gives it
		{vars: map[string]any{"ansible_become_user": " root"},
			want: []string{`^inventory: host h: ansible_become_user " root" has spaces around the name$`}},
		{vars: map[string]any{"ansible_become_user": "root", "ansible_sudo_user": "svc\t"},
			want: []string{`^inventory: host h: ansible_sudo_user "svc\\\\t" has spaces around the name$`}},
		{vars: map[string]any{"ansible_become_user": " root", "ansible_sudo_user": "svc"}},
		{vars: map[string]any{"ansible_become_method": "su", "ansible_su_user": "op "}, want: []string{`ansible_su_user "op " has spaces`}},
		{vars: map[string]any{"ansible_become_method": "su", "ansible_su_user": []any{"a"}},
			want: []string{`^inventory: host h: ansible_su_user is a list, not a string$`}},
		{vars: map[string]any{"ansible_become_password": map[string]any{"a": "b"}},
			want: []string{`^inventory: host h: ansible_become_password is a mapping, not a string$`}},
		{vars: map[string]any{"ansible_port": "http"}, want: []string{`^inventory: host h: ansible_port="http" is not a port number \(1-65535\)$`}},
		{vars: map[string]any{"ansible_ssh_port": int64(70000)}, want: []string{`ansible_ssh_port="70000" is not a port number`}},
		{vars: map[string]any{"ansible_become": "maybe"}, want: []string{`ansible_become="maybe" is not a boolean`}},
		{vars: map[string]any{"ansible_host_key_checking": "sometimes"}, want: []string{`ansible_host_key_checking="sometimes" is not a boolean`}},
		{vars: map[string]any{"ansible_timeout": "soon"}, want: []string{`ansible_timeout="soon" is not a whole number of seconds`}},
		{vars: map[string]any{"ansible_user": []any{"a"}}, want: []string{`ansible_user is a list, not a string`}},
		{vars: map[string]any{"ansible_become_exe": "/opt/bin/mysudo"}, want: []string{`ansible_become_exe="/opt/bin/mysudo" is not supported \(runbook runs sudo as the host's PATH finds it, not another program\)$`}},
		{vars: map[string]any{"ansible_become_method": "su", "ansible_su_flags": "-l"}, want: []string{`ansible_su_flags="-l" is not supported`}},
		{vars: map[string]any{"ansible_become_flags": "-i"}, want: []string{`ansible_become_flags="-i" is not supported`}},
		{vars: map[string]any{"ansible_shell_type": "fish"}, want: []string{`ansible_shell_type="fish" is not supported`}},
		{vars: map[string]any{"ansible_ssh_executable": "/usr/local/bin/tsh"}, want: []string{`ansible_ssh_executable="/usr/local/bin/tsh" is not supported`}},
		{vars: map[string]any{"ansible_ssh_pkcs11_provider": "/usr/lib/opensc-pkcs11.so"}, want: []string{`ansible_ssh_pkcs11_provider is not supported`}},
		// ssh arguments that change security or routing
		{vars: map[string]any{"ansible_ssh_extra_args": "-L 8080:localhost:80"},
			want: []string{`^inventory: host h: ansible_ssh_extra_args: -L \(LocalForward\) is not supported: runbook opens no port forwardings$`}},
		{vars: map[string]any{"ansible_ssh_common_args": "-o Ciphers=aes128-cbc -A -4 -F /etc/other.conf"},
			want: []string{`ansible_ssh_common_args: -o Ciphers is not supported`, `-A \(ForwardAgent\) is not supported`,
				`-4 \(AddressFamily\) is not supported`, `ansible_ssh_common_args: -F is not supported: runbook reads one ssh_config`}},
		{vars: map[string]any{"ansible_ssh_common_args": "-oForwardAgent=yes -o KexAlgorithms=+diffie-hellman-group1-sha1 -o SendEnv=LANG -o HostKeyAlias=x"},
			want: []string{`-o ForwardAgent is not supported`, `-o KexAlgorithms is not supported`, `-o SendEnv is not supported`, `-o HostKeyAlias is not supported`}},
		{vars: map[string]any{"ansible_ssh_extra_args": "-o NoSuchOption=1 somehost"},
			want: []string{`^inventory: host h: ansible_ssh_extra_args: the -o in the 1st word is not supported \(runbook does not know this ssh option\)$`, `the 3rd word is not an option`}},
		{vars: map[string]any{"ansible_ssh_common_args": "-o ConnectTimeout=soon -o Port=x -o StrictHostKeyChecking=maybe -o HostName=%h.example"},
			want: []string{`ConnectTimeout is not a whole number`, `-o Port is not a port`, `-o StrictHostKeyChecking is not one of`, `-o HostName with %-tokens`}},
		{vars: map[string]any{"ansible_ssh_common_args": "-o 'ProxyCommand=nc %h %p"},
			want: []string{`^inventory: host h: ansible_ssh_common_args: cannot be split as a shell splits words: no closing quotation$`}},
		{vars: map[string]any{"ansible_ssh_common_args": "-o"}, want: []string{`^inventory: host h: ansible_ssh_common_args: -o at the end needs a value$`}},
		// the text of ssh arguments is never shown: it may hold a password
		{vars: map[string]any{"ansible_ssh_extra_args": `-o 'ProxyCommand=sshpass -p s3cr3t ssh -W %h:%p b`},
			want: []string{`ansible_ssh_extra_args: cannot be split`}},
		{vars: map[string]any{"ansible_ssh_extra_args": `-o ProxyCommand=sshpass -p s3cr3t ssh -W %h:%p b`},
			want: []string{`^inventory: host h: ansible_ssh_extra_args: -p \(Port\) is not a port number \(1-65535\)$`,
				`ansible_ssh_extra_args: the 5th word is not an option`, `-W is not supported`, `the 8th word is not an option`}},
		{vars: map[string]any{"ansible_ssh_private_key_file": "k1", "ansible_ssh_common_args": "-i k2"},
			want: []string{`ansible_ssh_common_args: -i \(IdentityFile\) names a second key file`}},
		// a login password is not sent to a host whose key is not verified
		{vars: map[string]any{"ansible_password": "s3cr3t", "ansible_host_key_checking": false},
			want: []string{`^inventory: host h: ansible_password is not sent to a host whose key is not verified, and ansible_host_key_checking turns host key checking off: use StrictHostKeyChecking=accept-new`}},
		{vars: map[string]any{"ansible_ssh_pass": "s3cr3t", "ansible_ssh_common_args": "-o StrictHostKeyChecking=no"},
			want: []string{`ansible_ssh_pass is not sent to a host whose key is not verified, and ansible_ssh_common_args turns`}},
		{vars: map[string]any{"ansible_password": "s3cr3t", "ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new"}},
		{vars: map[string]any{"ansible_host_key_checking": false}},
		// secrets: a wrong kind is named, the value is not shown
		{vars: map[string]any{"ansible_become_password": map[string]any{"s3cr3t-inside": "x"}, "ansible_password": []any{"s3cr3t-too"}},
			want: []string{`ansible_password is a list, not a string`, `ansible_become_password is a mapping, not a string`}},
		// every refusal at once, one per variable
		{vars: map[string]any{"ansible_connection": "winrm", "ansible_become_method": "runas", "ansible_port": "x"},
			want: []string{`ansible_connection=`, `ansible_port=`, `ansible_become_method=`}},
	}
	for _, tt := range tests {
		h := &Host{Name: "h", Vars: tt.vars}
		errs := h.CheckConnection()
		var got []string
		for _, err := range errs {
			got = append(got, err.Error())
			if _, ok := err.(*ConnError); !ok {
				t.Errorf("%v: %T is not a *ConnError", tt.vars, err)
			}
		}
		if len(got) != len(tt.want) {
			t.Errorf("%v:\n got %q\nwant %q", tt.vars, got, tt.want)
			continue
		}
		for i, re := range tt.want {
			if !regexp.MustCompile(re).MatchString(got[i]) {
				t.Errorf("%v: error %d = %q, want it to match %q", tt.vars, i, got[i], re)
			}
		}
		for _, g := range got {
			if strings.Contains(g, "s3cr3t") || strings.Contains(g, "pw") {
				t.Errorf("%v: an error shows a secret: %s", tt.vars, g)
			}
		}
	}
}

// A host name from an inventory cannot drive the terminal through an error.
func TestCheckConnectionEscapes(t *testing.T) {
	h := &Host{Name: "web\x1b[2J\n1", Vars: map[string]any{"ansible_connection": "x\x1b]0;y\a"}}
	errs := h.CheckConnection()
	if len(errs) != 1 || strings.ContainsAny(errs[0].Error(), "\x1b\n\a") {
		t.Errorf("errors %q", errs)
	}
}

// docs/inventory.md lists every ssh option and variable runbook decides about.
func TestConnectionDocs(t *testing.T) {
	b, err := os.ReadFile("../docs/inventory.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.ToLower(string(b))
	for k := range sshOptionRules {
		name := k
		if n, ok := optionNames[k]; ok {
			name = n
		}
		if !strings.HasPrefix(k, "-") && !strings.Contains(doc, "`"+strings.ToLower(name)+"`") {
			t.Errorf("docs/inventory.md does not mention the ssh option %s", name)
		}
		if strings.HasPrefix(k, "-") && !strings.Contains(doc, "`"+strings.ToLower(k)+"`") {
			t.Errorf("docs/inventory.md does not mention the ssh flag %s", k)
		}
	}
	for _, v := range ignoredVars {
		if !strings.Contains(doc, "`"+v+"`") {
			t.Errorf("docs/inventory.md does not mention %s", v)
		}
	}
}

// A file (or a line) that names a secret anywhere: errors about it show none of its text.
func TestMentionsSecret(t *testing.T) {
	for src, want := range map[string]bool{
		"[web]\nw1 ansible_become_password=x\n":                                 true,
		"all:\n  vars:\n    db_password: |\n  x\n":                              true,
		"w1 api_token=abc":                                                      true,
		"w1 motd=x\ndeploy: |\n  -----BEGIN OPENSSH PRIVATE KEY-----\n  b3Bl\n": true,
		"w1 ca=\"-----BEGIN CERTIFICATE-----\"":                                 false,
		"w1 ansible_ssh_private_key_file=~/.ssh/k":                              false,
		"[web]\nw1 motd=hello ansible_user=deploy":                              false,
		"": false,
	} {
		if got := MentionsSecret([]byte(src)); got != want {
			t.Errorf("MentionsSecret(%q) = %v, want %v", src, got, want)
		}
	}
	_, diags := Parse("inv.ini", []byte("[web]\nw1\n[web:vars]\nansible_become_password Hunter2\n"))
	if !diags.HasErrors() || strings.Contains(diags.Error(), "Hunter2") {
		t.Errorf("diagnostics %v", diags)
	}
	_, diags = Parse("inv.yml", []byte("all:\n  hosts:\n    w1: \"ansible_password=Hunter2\"\n"))
	if !diags.HasErrors() || strings.Contains(diags.Error(), "Hunter2") {
		t.Errorf("diagnostics %v", diags)
	}
}
