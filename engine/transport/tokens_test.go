package transport

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestExpandCommand(t *testing.T) {
	e := expander{host: "db-1.example.net", alias: "db1", user: "deploy", port: 2222, local: "me", home: "/home/me"}
	tests := []struct {
		name      string
		e         expander
		cmd, want string
		wantErr   []string // substrings of the refusal
	}{
		{name: "words", e: e, cmd: "nc -X 5 -x proxy:1080 %h %p", want: "nc -X 5 -x proxy:1080 db-1.example.net 2222"},
		{name: "every token", e: e, cmd: "p %h %n %r %p %u %d %%", want: "p db-1.example.net db1 deploy 2222 me /home/me %"},
		{name: "inside quotes", e: e, cmd: `ssh -W '%h:%p' "%r@bastion"`, want: `ssh -W 'db-1.example.net:2222' "deploy@bastion"`},
		{name: "IPv6 with a zone", e: expander{host: "fe80::1%eth0", port: 22}, cmd: "nc %h %p", want: "nc fe80::1%eth0 22"},
		{name: "non-ASCII host is quoted", e: expander{host: "bücher.example"}, cmd: "nc %h", want: "nc 'bücher.example'"},
		{name: "local home with a space is quoted", e: expander{home: "/home/a b"}, cmd: "%d/bin/p x", want: "'/home/a b'/bin/p x"},
		{name: "local home in double quotes", e: expander{home: `/h/$x"y`}, cmd: `p "%d"`, want: `p "/h/\$x\"y"`},
		{name: "local home in single quotes", e: expander{home: "/h/it's"}, cmd: `p '%d'`, want: `p '/h/it'\''s'`},
		{name: "a percent sign", e: e, cmd: "p 100%%", want: "p 100%"},

		{name: "semicolon", e: expander{host: "127.0.0.1;touch${IFS}/tmp/x;#"}, cmd: "nc %h %p",
			wantErr: []string{`ProxyCommand "nc %h %p"`, `%h would expand to the host name "127.0.0.1;touch${IFS}/tmp/x;#"`, "';'"}},
		{name: "command substitution", e: expander{host: "a$(id)"}, cmd: "nc %h", wantErr: []string{"'$'"}},
		{name: "backticks", e: expander{host: "a`id`"}, cmd: "nc '%h'", wantErr: []string{"'`'"}},
		{name: "alias", e: expander{alias: "x|y"}, cmd: "p %n", wantErr: []string{"%n", "host alias", "'|'"}},
		{name: "user", e: expander{user: "a b"}, cmd: "p %r", wantErr: []string{"%r", "remote user", "space"}},
		{name: "option", e: expander{host: "-oProxyCommand=x"}, cmd: "nc %h", wantErr: []string{"starts with '-'"}},
		{name: "newline", e: expander{host: "a\nb"}, cmd: "nc %h", wantErr: []string{`control character '\n'`}},
		{name: "escape", e: expander{host: "a\x1b[2Kb"}, cmd: "nc %h", wantErr: []string{`control character '\x1b'`}},
		{name: "glob", e: expander{host: "*"}, cmd: "nc %h", wantErr: []string{"'*'"}},
		{name: "bad UTF-8", e: expander{host: "a\xffb"}, cmd: "nc %h", wantErr: []string{"UTF-8"}},
		{name: "control character in the local home", e: expander{home: "/h\n"}, cmd: "p %d", wantErr: []string{"%d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.e.command("ProxyCommand", tt.cmd)
			checkExpanded(t, got, err, tt.want, tt.wantErr)
		})
	}
}

// checkExpanded checks an expansion: got, or an *UnsafeTokenError that mentions each of
// wantErr when there are any.
func checkExpanded(t *testing.T, got string, err error, want string, wantErr []string) {
	t.Helper()
	if wantErr != nil {
		var ue *UnsafeTokenError
		if !errors.As(err, &ue) {
			t.Fatalf("got %q, %v; want an UnsafeTokenError", got, err)
		}
		for _, w := range wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
		return
	}
	if err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
}

// A metacharacter where no token expands it is nobody's business: the command is the
// operator's own.
func TestExpandCommandChecksOnlyUsedTokens(t *testing.T) {
	e := expander{host: "127.0.0.1", alias: "a;b", user: "$(x)", port: 22}
	got, err := e.command("ProxyCommand", "nc %h %p")
	if err != nil || got != "nc 127.0.0.1 22" {
		t.Errorf("got %q, %v", got, err)
	}
}

// A % sequence that is not a token is an error, as in OpenSSH, rather than text the shell
// would see as written: OpenSSH expands only %h %n %p %r in a ProxyCommand (runbook also %u
// %d); %C, %L, %l, %k, %j, %i and the others are errors there.
func TestExpandCommandUnknownTokens(t *testing.T) {
	e := expander{host: "h", port: 22}
	for _, tt := range []struct{ cmd, want string }{
		{"nc %C", `ProxyCommand "nc %C": unknown token %C`},
		{"nc %L %h", "unknown token %L"},
		{"nc %h %l", "unknown token %l"},
		{"nc %k", "unknown token %k"},
		{"p %j %i", "unknown token %j"},
		{"p '%x'", "unknown token %x"},
		{"p 100%", `ProxyCommand "p 100%" ends with a lone '%'`},
	} {
		got, err := e.command("ProxyCommand", tt.cmd)
		var te *TokenError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %q, %v; want a TokenError %q", tt.cmd, got, err, tt.want)
		}
	}
}

// File names: ~ is expanded before the tokens, so no value becomes a ~; a host name, alias
// or user that is not one plain component of a name is refused, so none climbs out of the
// directory the operator named.
func TestExpandPath(t *testing.T) {
	hostname, _ := os.Hostname()
	t.Setenv("RB_TEST_KEYDIR", "/env/dir")
	t.Setenv("RB_TEST_TOKEN", "%n")
	e := expander{host: "db-1.example.net", alias: "db1", user: "deploy", port: 2222, local: "me", home: "/home/me"}
	tests := []struct {
		name    string
		e       expander
		path    string
		want    string
		wantErr []string
	}{
		{name: "tokens", e: e, path: "~/.ssh/%n/%r@%h:%p", want: "/home/me/.ssh/db1/deploy@db-1.example.net:2222"},
		{name: "home alone", e: e, path: "~", want: "/home/me"},
		{name: "local user and home", e: e, path: "%d/keys/%u", want: "/home/me/keys/me"},
		{name: "an IPv6 address", e: expander{host: "fe80::1%eth0"}, path: "/kh/%h", want: "/kh/fe80::1%eth0"},
		{name: "a user with @", e: expander{user: "alice@corp.example"}, path: "/keys/%r", want: "/keys/alice@corp.example"},
		{name: "other % sequences stay", e: e, path: "/k/%Z%j", want: "/k/%Z%j"},
		{name: "connection hash, uid, local host", e: newExpander("/home/me", "me", "db-1.example.net", "db1", 2222, "deploy", ""),
			path: "/c/%C-%i-%l-%L-%k", want: fmt.Sprintf("/c/%x-%d-%s-%s-db1", sha1.Sum([]byte(hostname+"db-1.example.net2222deploy")), os.Getuid(), hostname, strings.Split(hostname, ".")[0])},
		{name: "host key alias", e: newExpander("/home/me", "me", "h", "db1", 22, "u", "kh-alias"), path: "/c/%k", want: "/c/kh-alias"},
		{name: "environment", e: e, path: "${RB_TEST_KEYDIR}/%n", want: "/env/dir/db1"},
		{name: "a token from the environment is checked", e: expander{alias: "../x"}, path: "/k/${RB_TEST_TOKEN}", wantErr: []string{"%n", "'/'"}},
		{name: "a / in the key alias", e: newExpander("/home/me", "me", "h", "db1", 22, "u", "a/b"), path: "/c/%k", wantErr: []string{"%k", "'/'"}},
		{name: "a value is not a ~", e: expander{host: "~", home: "/home/me"}, path: "%h/x", want: "~/x"},

		{name: "a / in the alias", e: expander{alias: "../../etc/cron.d/x"}, path: "~/.ssh/known_hosts.d/%n",
			wantErr: []string{`UserKnownHostsFile "~/.ssh/known_hosts.d/%n": %n would expand to the host alias "../../etc/cron.d/x", which contains '/'`}},
		{name: "dots", e: expander{host: ".."}, path: "/kh/%h/known_hosts", wantErr: []string{"%h", "made of dots only"}},
		{name: "a zone with a /", e: expander{host: "::ffff:127.0.0.1%/../../x"}, path: "/kh/%h", wantErr: []string{"'/'"}},
		{name: "a newline", e: expander{host: "a\n* ssh-ed25519 AAAA"}, path: "/kh/%h", wantErr: []string{`control character '\n'`}},
		{name: "a pattern", e: expander{host: "*"}, path: "/kh/%h", wantErr: []string{"'*'"}},
		{name: "a / in the user", e: expander{user: "a/../b"}, path: "/keys/%r", wantErr: []string{"%r", "remote user", "'/'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.e.path("UserKnownHostsFile", tt.path)
			checkExpanded(t, got, err, tt.want, tt.wantErr)
		})
	}
}

// contexts are the places a token can stand in a command; for each, the literal text the
// shell must see for the value v.
var contexts = []struct {
	cmd  string
	want func(v string) []string
}{
	{"p %X", func(v string) []string { return []string{"p", v} }},
	{"p a%Xb", func(v string) []string { return []string{"p", "a" + v + "b"} }},
	{"p '%X'", func(v string) []string { return []string{"p", v} }},
	{`p "%X"`, func(v string) []string { return []string{"p", v} }},
	{`p "a\%X"`, func(v string) []string { return []string{"p", `a\` + v} }},
	{`p \%X`, func(v string) []string { return []string{"p", v} }},
	{`p '%X'"%X"%X`, func(v string) []string { return []string{"p", v + v + v} }},
}

// checkExpansion expands each context with v as the host (%h) and as the local home (%d):
// either the value is refused, or a shell reads exactly one literal word for it, with no
// shell syntax of its own.
func checkExpansion(t *testing.T, v string) {
	for _, c := range contexts {
		if v == "" && c.cmd == `p \%X` {
			continue // the command's backslash escapes whatever follows: nothing to check
		}
		for _, tok := range []byte{'h', 'd'} {
			e := expander{host: v, home: v}
			cmd := strings.ReplaceAll(c.cmd, "%X", "%"+string(tok))
			got, err := e.command("ProxyCommand", cmd)
			if p := unsafeForShell(v, tok == 'h'); p != "" {
				if err == nil {
					t.Fatalf("%q with %%%c = %q: not refused (%s)", cmd, tok, v, p)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%q with %%%c = %q: %v", cmd, tok, v, err)
			}
			words, err := shellWords(got)
			if err != nil {
				t.Fatalf("%q with %%%c = %q expands to %q: %v", cmd, tok, v, got, err)
			}
			if want := c.want(v); !reflect.DeepEqual(words, want) {
				t.Fatalf("%q with %%%c = %q expands to %q, read as %q; want %q", cmd, tok, v, got, words, want)
			}
		}
	}
}

func TestExpansionIsLiteral(t *testing.T) {
	for _, v := range []string{"", "host", "it's", `a"b`, `\`, `a\`, "$HOME", "`id`", "a b", "~x", "#c", "é", "-x", "*", "a;b"} {
		checkExpansion(t, v)
	}
}

// FuzzProxyCommand: whatever the template and the host's values, expansion does not
// panic, refuses every host value with shell syntax it would expand, and quotes the rest so
// that a shell reads them as literal text.
func FuzzProxyCommand(f *testing.F) {
	for _, s := range []struct{ cmd, host, user string }{
		{"nc %h %p", "127.0.0.1;touch${IFS}/tmp/x;#", "root"},
		{"ssh -W '%h:%p' %r@bastion", "a$(id)b", "u`id`"},
		{`sh -c "nc %h %p" # %n`, "web1", "deploy"},
		{`p \%d "\%d" '%d'`, "h", "it's"},
		{"%", "", ""},
	} {
		f.Add(s.cmd, s.host, s.user)
	}
	f.Fuzz(func(t *testing.T, cmd, host, user string) {
		e := expander{host: host, alias: host, user: user, local: user, home: user, port: 22}
		_, err := e.command("ProxyCommand", cmd)
		var ue *UnsafeTokenError
		var te *TokenError
		if err != nil && !errors.As(err, &ue) && !errors.As(err, &te) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		if err == nil {
			for _, u := range usedTokens(cmd) {
				v, _, fromHost, _ := e.tokenValue(u)
				if p := unsafeForShell(v, fromHost); p != "" {
					t.Fatalf("%q: %%%c = %q expanded although it %s", cmd, u, v, p)
				}
			}
		}
		checkExpansion(t, host)
		checkExpansion(t, user)
	})
}

// usedTokens lists the tokens cmd expands.
func usedTokens(cmd string) []byte {
	var out []byte
	for i := 0; i+1 < len(cmd); i++ {
		if cmd[i] == '%' {
			i++
			if strings.IndexByte("hnrpud", cmd[i]) >= 0 {
				out = append(out, cmd[i])
			}
		}
	}
	return out
}

// shellWords splits a command line as a POSIX shell reads a simple command, and fails on
// anything that is more than literal words: an unquoted metacharacter, an expansion, a
// glob, a comment, a tilde, a line continuation.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
			continue
		case c == '\\':
			if i+1 == len(s) || s[i+1] == '\n' {
				return nil, fmt.Errorf("a backslash at %d escapes nothing or a newline", i)
			}
			i++
			w.WriteByte(s[i])
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' at %d", i)
			}
			w.WriteString(s[i+1 : i+1+j])
			i += 1 + j
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch {
				case s[i] == '$' || s[i] == '`':
					return nil, fmt.Errorf("expansion %q inside double quotes at %d", s[i], i)
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\", s[i+1]) >= 0:
					i++
				case s[i] == '\\' && i+1 < len(s) && s[i+1] == '\n':
					return nil, fmt.Errorf("line continuation at %d", i)
				}
				w.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, errors.New(`unterminated "`)
			}
		case strings.IndexByte("\n;&|<>()$`*?[]{}!^", c) >= 0,
			!inWord && (c == '#' || c == '~'):
			return nil, fmt.Errorf("shell syntax %q at %d", c, i)
		default:
			w.WriteByte(c)
		}
		inWord = true
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}
