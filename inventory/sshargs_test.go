package inventory

import (
	"strings"
	"testing"
)

// quoteSingle and quoteDouble write s as one shell word, the two ways inventories quote an
// ssh option's value.
func quoteSingle(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func quoteDouble(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// FuzzSSHArgs feeds arbitrary ansible_ssh_common_args to the parser, and arbitrary
// ProxyCommands quoted as inventories quote them. Nothing may panic; a quoted command
// reaches the transport exactly as written (its %-tokens untouched: the transport expands
// and checks them); and only a ProxyCommand of the "ssh -W" form becomes a jump host.
func FuzzSSHArgs(f *testing.F) {
	for _, s := range []struct{ args, cmd string }{
		{"-o ProxyJump=jump@bastion:2222", "nc %h %p"},
		{`-J bastion -o StrictHostKeyChecking=no -o "UserKnownHostsFile /a /b"`, "ssh -W %h:%p -q admin@bastion -p 2200"},
		{`-o ProxyCommand="nc -X 5 -x proxy:1080 %h %p"`, `sh -c 'nc "%h" %p' # it's`},
		{"-oProxyJump=b1,b2 -o", "ssh -W '[%h]:%p' -l admin bastion"},
		{`-o 'ProxyCommand=nc %h %p`, "127.0.0.1;touch${IFS}x;#"},
		{`-o ProxyCommand=ssh\ -W\ %h:%p\ b -J`, "\\\"'\t\n%%"},
	} {
		f.Add(s.args, s.cmd)
	}
	f.Fuzz(func(t *testing.T, args, cmd string) {
		jump, opts, err := sshArgs(args)
		if err == nil {
			for k := range opts {
				if k != strings.ToLower(k) {
					t.Fatalf("%q: option %q is not lower case", args, k)
				}
			}
			if proxyJump(args) != jump {
				t.Fatalf("%q: proxyJump and sshArgs disagree", args)
			}
		}
		for _, q := range []string{quoteSingle("ProxyCommand=" + cmd), "ProxyCommand=" + quoteDouble(cmd)} {
			a := "-o " + q
			jump, opts, err := sshArgs(a)
			if err != nil {
				t.Fatalf("%q: %v", a, err)
			}
			if got, want := opts["proxycommand"], strings.TrimSpace(cmd); got != want {
				t.Fatalf("%q: ProxyCommand %q; want %q", a, got, want)
			}
			if jump != "" && jump != jumpFromProxyCommand(strings.TrimSpace(cmd)) {
				t.Fatalf("%q: jump host %q from a command that is not ssh -W", a, jump)
			}
			if jump != "" && !strings.Contains(cmd, "-W") {
				t.Fatalf("%q: jump host %q without -W", a, jump)
			}
		}
	})
}
