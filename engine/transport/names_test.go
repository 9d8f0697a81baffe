package transport

import (
	"errors"
	"strings"
	"testing"
)

// Addresses and users that name hosts in real inventories pass; anything that would mean
// something in known_hosts, a file name or a command is refused, with the character named.
func TestCheckTarget(t *testing.T) {
	tests := []struct {
		address, user string
		want          string // "" or a substring of the refusal
	}{
		{address: "web-01.example.com", user: "deploy"},
		{address: "db_7", user: "ec2-user"},
		{address: "10.0.0.11", user: "first.last"},
		{address: "::1", user: "root"},
		{address: "2001:db8::7", user: "alice@corp.example"},
		{address: "fe80::1%eth0", user: "u"},
		{address: "fe80::1%enp0s31f6.100", user: "u"},
		{address: "fe80::1%2", user: "u"},
		{address: "::ffff:10.0.0.1", user: "u"},
		{address: "bücher.example", user: "u"},
		{address: "WEB1", user: ""},

		{address: "::ffff:1.2.3.4%x\n* ssh-ed25519 AAAA\n#", want: `address "::ffff:1.2.3.4%x\n* ssh-ed25519 AAAA\n#" contains the control character '\n'`},
		{address: "::ffff:127.0.0.1%/../../x", want: `contains '/'`},
		{address: "a,*", want: `contains ','`},
		{address: "*", want: `contains '*'`},
		{address: "h?", want: `contains '?'`},
		{address: "!h", want: `contains '!'`},
		{address: "[::1]", want: `contains '['`},
		{address: "|1|x|y", want: `contains '|'`},
		{address: "#h", want: `contains '#'`},
		{address: "@revoked", want: `contains '@'`},
		{address: "u@h", want: `contains '@'`},
		{address: "h'x", want: `contains '\''`},
		{address: `h"x`, want: `contains '"'`},
		{address: `h\x`, want: `contains '\\'`},
		{address: "h`id`", want: "contains '`'"},
		{address: "h$(id)", want: `contains '$'`},
		{address: "a;b", want: `contains ';'`},
		{address: "a&b", want: `contains '&'`},
		{address: "a<b", want: `contains '<'`},
		{address: "a>b", want: `contains '>'`},
		{address: "a{b}", want: `contains '{'`},
		{address: "a b", want: `contains the space ' '`},
		{address: "a\u00a0b", want: `contains the space '\u00a0'`},
		{address: "a\tb", want: `control character '\t'`},
		{address: "a\x1b[2Kb", want: `control character '\x1b'`},
		{address: "-oProxyCommand=x", want: `starts with '-'`},
		{address: "..", want: "made of dots only"},
		{address: "a\xffb", want: "not valid UTF-8"},
		{address: "a:b", want: `contains ':' but is not an IPv6 address`},
		{address: "10.0.0.1%eth0", want: `contains '%' but is not an IPv6 address`},
		{address: "fe80::1%", want: "not an IPv6 address"},
		{address: "fe80::1%abcdefghijklmnop", want: `has the zone "abcdefghijklmnop"`},
		{address: "fe80::1%a:b", want: `has the zone "a:b"`},
		{address: "fe80::1%a+b", want: `has the zone "a+b"`},
		{address: "", want: "is empty"},

		{address: "h", user: "a b", want: `remote user "a b" contains the space`},
		{address: "h", user: "-l", want: `remote user "-l" starts with '-'`},
		{address: "h", user: "u/../x", want: `contains '/'`},
		{address: "h", user: "u$(id)", want: `contains '$'`},
		{address: "h", user: "u\nx", want: `control character '\n'`},
	}
	for _, tt := range tests {
		err := checkTarget(Target{Address: tt.address, User: tt.user})
		if tt.want == "" {
			if err != nil {
				t.Errorf("%q, user %q: %v", tt.address, tt.user, err)
			}
			continue
		}
		var ne *NameError
		if !errors.As(err, &ne) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q, user %q: %v; want a NameError %q", tt.address, tt.user, err, tt.want)
		}
	}
}
