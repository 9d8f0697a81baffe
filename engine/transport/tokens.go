package transport

import (
	"cmp"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/runbook/runbook/internal/sh"
)

// expander applies the ssh_config %-tokens, and ~ in file names, for one host. Every option
// that takes tokens goes through it: path for the file names (IdentityFile,
// UserKnownHostsFile, IdentityAgent), command for the ProxyCommand that /bin/sh runs,
// whether it comes from ssh_config or from the inventory's ssh arguments.
type expander struct {
	home, local, host, alias, user string
	port                           int

	keyAlias string // %k: HostKeyAlias, else the alias
	connHash string // %C
	uid      string // %i
	fqdn     string // %l: the local host name with its domain
}

// newExpander sets up the tokens for a host: the controller's values (%d %u %i %l %L) and
// the host's (%h %n %p %r, %k, and %C, ssh's hash of %l%h%p%r).
func newExpander(home, local, host, alias string, port int, user, hostKeyAlias string) expander {
	fqdn, _ := os.Hostname()
	e := expander{home: home, local: local, host: host, alias: alias, port: port, user: user,
		keyAlias: cmp.Or(hostKeyAlias, alias), uid: strconv.Itoa(os.Getuid()), fqdn: fqdn}
	sum := sha1.Sum([]byte(fqdn + host + strconv.Itoa(port) + user))
	e.connHash = hex.EncodeToString(sum[:])
	return e
}

// tokenValue returns what token c stands for and what it is called in errors. fromHost is
// true for the values that describe the host rather than the controller (%h, %n, %r): they
// may come from a dynamic inventory, so they are checked before a shell sees them.
func (e expander) tokenValue(c byte) (val, what string, fromHost, ok bool) {
	switch c {
	case 'h':
		return e.host, "host name", true, true
	case 'n':
		return e.alias, "host alias", true, true
	case 'r':
		return e.user, "remote user", true, true
	case 'p':
		return strconv.Itoa(e.port), "port", false, true
	case 'u':
		return e.local, "local user", false, true
	case 'd':
		return e.home, "local home directory", false, true
	case 'k':
		return e.keyAlias, "host key alias", true, true
	case 'C':
		return e.connHash, "connection hash", false, true
	case 'i':
		return e.uid, "local user ID", false, true
	case 'l':
		return e.fqdn, "local host name", false, true
	case 'L':
		short, _, _ := strings.Cut(e.fqdn, ".")
		return short, "local host name", false, true
	}
	return "", "", false, false
}

// text expands %% and the tokens named in which; any other % sequence is left as written.
func (e expander) text(s, which string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		v, _, _, ok := e.tokenValue(s[i])
		switch {
		case s[i] == '%':
			b.WriteByte('%')
		case ok && strings.IndexByte(which, s[i]) >= 0:
			b.WriteString(v)
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// path expands a leading ~ of a file name, then its tokens, as OpenSSH does (so a value
// cannot become a ~). No shell reads the result, so nothing is quoted; a host name, alias or
// user that would not be one plain file name component (a '/', a name of dots, a space, a
// control or pattern character: see valueProblem) is refused with an *UnsafeTokenError.
// Other % sequences are left as written.
func (e expander) path(option, s string) (string, error) {
	// ${VAR} first: whatever it brings in is checked and expanded like the rest.
	s, err := expandEnv(option, s)
	if err != nil {
		return "", err
	}
	if s == "~" {
		return e.home, nil
	}
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		i++
		v, what, fromHost, ok := e.tokenValue(s[i])
		if !ok || !fromHost {
			continue
		}
		if strings.IndexByte(pathTokens, s[i]) < 0 {
			continue
		}
		forbidden := forbiddenInHost
		if s[i] == 'r' {
			forbidden = forbiddenInUser
		}
		if p := valueProblem(v, forbidden); p != "" {
			return "", &UnsafeTokenError{Option: option, Command: s, Token: s[i], What: what, Value: v, Problem: p, FileName: true}
		}
	}
	if rest, ok := strings.CutPrefix(s, "~/"); ok {
		return filepath.Join(e.home, e.text(rest, pathTokens)), nil
	}
	return e.text(s, pathTokens), nil
}

// commandTokens are the tokens expanded in a ProxyCommand: OpenSSH's %h %n %p %r, and %u %d.
const commandTokens = "hnprud"

// pathTokens are the tokens OpenSSH expands in file names (IdentityFile, CertificateFile,
// UserKnownHostsFile, IdentityAgent, ControlPath).
const pathTokens = "hnprudkCilL"

// expandEnv replaces ${NAME} with the controller's environment variable, as OpenSSH does in
// file names; an unset variable is an error, as there.
func expandEnv(option, s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("%s %q: unterminated ${", option, s)
		}
		name := s[i+2 : i+j]
		v, ok := os.LookupEnv(name)
		if !ok || name == "" {
			return "", fmt.Errorf("%s %q: environment variable %q is not set", option, s, name)
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+1:]
	}
}

// UnsafeTokenError is a host name, alias or user that a %-token would put into a shell
// command although the shell would read part of it as syntax, or into a file name although
// it is not one plain component of a name. The inventory that supplies these values may be
// generated from data others control, so they are refused wherever they come from.
type UnsafeTokenError struct {
	Option   string // "ProxyCommand", "IdentityFile", "UserKnownHostsFile", ...
	Command  string // the command or file name as written, before expansion
	Token    byte   // 'h', 'n', 'r', 'u' or 'd'
	What     string // "host name", "remote user", ...
	Value    string
	Problem  string // what is wrong with Value
	FileName bool   // Command is a file name, not a shell command
}

func (e *UnsafeTokenError) Error() string {
	rule := "a value expanded into a shell command may not contain shell metacharacters, spaces or control characters"
	if e.FileName {
		rule = "a host value expanded into a file name may not contain '/', spaces, control characters or pattern characters, nor be made of dots"
	}
	return fmt.Sprintf("%s %q: %%%c would expand to the %s %q, which %s; refused: %s",
		e.Option, e.Command, e.Token, e.What, e.Value, e.Problem, rule)
}

// TokenError is a ProxyCommand with a % sequence runbook does not expand. OpenSSH refuses
// such a command too rather than run it with the sequence left in.
type TokenError struct {
	Option  string // "ProxyCommand"
	Command string // as written
	Token   byte   // the character after %; 0: the command ends with a lone %
}

func (e *TokenError) Error() string {
	if e.Token == 0 {
		return fmt.Sprintf("%s %q ends with a lone '%%' (write %%%% for a percent sign)", e.Option, e.Command)
	}
	return fmt.Sprintf("%s %q: unknown token %%%c (runbook expands %%h %%n %%p %%r %%u %%d and %%%%)", e.Option, e.Command, e.Token)
}

// shellMeta are the characters that mean something to a POSIX shell (or to bash, or to a
// second shell the command may start, such as ssh's remote one) somewhere in a word.
const shellMeta = "'\"`$\\;&|<>(){}[]*?!#~^"

// unsafeForShell says what makes s unfit to be expanded into a shell command, "" if nothing.
// Host values (fromHost) must be plain words; the controller's own user and home need
// only be free of control characters, as quoting takes care of the rest.
func unsafeForShell(s string, fromHost bool) string {
	if !fromHost {
		return controlProblem(s)
	}
	return charProblem(s, shellMeta, "a shell metacharacter")
}

// command expands the tokens of a command line that /bin/sh will run. A host name, alias or
// user with anything a shell would interpret is refused (UnsafeTokenError), and so is a %
// sequence that is not a token (TokenError). Every expansion is quoted for where it stands
// as far as quotes and backslashes tell: outside quotes as one word, inside '…' or "…" as
// literal text of that quoted string. The tracker does not follow $(…), `…` or ${…}: there
// it quotes for the enclosing quotes only. That is enough for the host's values, which have
// no character a shell would read anywhere; the controller's own user and home, which may,
// are the operator's.
func (e expander) command(option, s string) (string, error) {
	state, escaped := unquoted, false
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+1 == len(s) {
			return "", &TokenError{Option: option, Command: s}
		}
		if c == '%' {
			i++
			t := s[i]
			if t == '%' {
				b.WriteByte('%')
				escaped = false
				continue
			}
			v, what, fromHost, ok := e.tokenValue(t)
			if !ok || strings.IndexByte(commandTokens, t) < 0 {
				return "", &TokenError{Option: option, Command: s, Token: t}
			}
			if p := unsafeForShell(v, fromHost); p != "" {
				return "", &UnsafeTokenError{Option: option, Command: s, Token: t, What: what, Value: v, Problem: p}
			}
			b.WriteString(quoteIn(state, escaped, v))
			escaped = false
			continue
		}
		b.WriteByte(c)
		switch {
		case escaped:
			escaped = false
		case state == inSingle:
			if c == '\'' {
				state = unquoted
			}
		case c == '\\':
			escaped = true
		case state == inDouble:
			if c == '"' {
				state = unquoted
			}
		case c == '\'':
			state = inSingle
		case c == '"':
			state = inDouble
		}
	}
	return b.String(), nil
}

// quoteState is where a point of a shell command stands: outside quotes, inside '…' or
// inside "…".
type quoteState int

const (
	unquoted quoteState = iota
	inSingle
	inDouble
)

// quoteIn renders v so that the shell reads it as literal text at a point of a command in
// the given quoting state; escaped says that a backslash of the command's own comes just
// before it. v has no control characters.
func quoteIn(state quoteState, escaped bool, v string) string {
	switch state {
	case inSingle: // only ' itself needs care
		return strings.ReplaceAll(v, "'", `'\''`)
	case inDouble:
		var b strings.Builder
		if escaped {
			// The command's backslash stays a literal backslash before v, as it would be
			// before any text that does not start with one of $ ` " \.
			b.WriteByte('\\')
		}
		for _, r := range v {
			if strings.ContainsRune("$`\"\\", r) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		return b.String()
	}
	if v == "" {
		if escaped {
			return ""
		}
		return "''"
	}
	if escaped {
		// The command's backslash makes the first character literal; the rest is quoted.
		_, n := utf8.DecodeRuneInString(v)
		if n == len(v) {
			return v
		}
		return v[:n] + sh.Quote(v[n:])
	}
	return sh.Quote(v)
}
