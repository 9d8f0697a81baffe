package transport

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The values that name a host (its address, the inventory name where it stands for the
// host, the remote user) may come from a dynamic inventory, generated from data others
// control. They reach places where characters mean something: a known_hosts line (',', '*',
// '!', '|', '#', '@', a newline), a file name ('/', ".."), a command suggested in an error,
// a ProxyCommand. Resolving or dialling a value proves nothing: Go's resolver dials an IPv6
// literal whatever text its zone holds ("::ffff:10.0.0.1%x\n* ssh-ed25519 …"). So these
// values are checked where a target is resolved, and again where it is dialled (a Target may
// be built without ResolveTarget), before they are used anywhere.

// forbiddenInHost are the characters, besides spaces and control characters, that no host
// address or host name may contain.
const forbiddenInHost = `,*?![]#|@"'\` + "`" + `$;&<>(){}/`

// forbiddenInUser is forbiddenInHost less '@': a directory user may be "alice@corp.example",
// and '@' means nothing to a shell, a file name or known_hosts.
const forbiddenInUser = `,*?![]#|"'\` + "`" + `$;&<>(){}/`

// NameError is a host address, host name or remote user that runbook refuses to use.
type NameError struct {
	What    string // "address", "host name", "remote user"
	Value   string
	Problem string // what is wrong with Value, naming the character
}

func (e *NameError) Error() string {
	return fmt.Sprintf("%s %q %s; refused: a host's address, name or user may not hold spaces, control characters or characters that mean something to a shell, a file name or known_hosts",
		e.What, e.Value, e.Problem)
}

// valueProblem says what makes s unfit to name a host or user, "" if nothing: see
// charProblem, and a name made of dots only (a directory, in a file name).
func valueProblem(s, forbidden string) string {
	if p := charProblem(s, forbidden, ""); p != "" {
		return p
	}
	if s != "" && strings.Trim(s, ".") == "" {
		return "is made of dots only"
	}
	return ""
}

// charProblem says what makes s unfit as a word that names something, "" if nothing:
// invalid UTF-8, a leading '-', a control character, a space, or a character of forbidden
// (called what, if not "").
func charProblem(s, forbidden, what string) string {
	if p := controlProblem(s); p != "" {
		return p
	}
	if strings.HasPrefix(s, "-") {
		return "starts with '-', which a command would read as an option"
	}
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			return fmt.Sprintf("contains the space %q", r)
		case strings.ContainsRune(forbidden, r) && what != "":
			return fmt.Sprintf("contains %q, %s", r, what)
		case strings.ContainsRune(forbidden, r):
			return fmt.Sprintf("contains %q", r)
		}
	}
	return ""
}

// controlProblem says whether s is invalid UTF-8 or holds a control character.
func controlProblem(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Sprintf("contains the control character %q", r)
		}
	}
	return ""
}

// hostProblem says what makes s unfit as a host address, "" if nothing. ':' and '%' are for
// IPv6 literals only, and a zone is an interface name or number: at most 15 letters, digits,
// '_', '.' or '-' (the kernel's limit for an interface name).
func hostProblem(s string) string {
	if s == "" {
		return "is empty"
	}
	if p := valueProblem(s, forbiddenInHost); p != "" {
		return p
	}
	i := strings.IndexAny(s, ":%")
	if i < 0 {
		return ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return fmt.Sprintf("contains %q but is not an IPv6 address", s[i])
	}
	if _, z, ok := strings.Cut(s, "%"); ok && !validZone(z) {
		return fmt.Sprintf("has the zone %q; a zone may only be 1 to 15 letters, digits, '_', '.' or '-'", z)
	}
	return ""
}

func validZone(z string) bool {
	if z == "" || len(z) > 15 {
		return false
	}
	for i := 0; i < len(z); i++ {
		c := z[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// userProblem says what makes s unfit as a remote user, "" if nothing. Empty is fine: the
// server refuses it.
func userProblem(s string) string {
	return valueProblem(s, forbiddenInUser)
}

// checkTarget refuses a target whose address or user is unfit (see NameError). The name is
// checked where it stands for the host: as the address when there is no other, and where
// %n expands it (ResolveTarget).
func checkTarget(t Target) error {
	if p := hostProblem(t.address()); p != "" {
		return &NameError{What: "address", Value: t.address(), Problem: p}
	}
	if p := userProblem(t.User); p != "" {
		return &NameError{What: "remote user", Value: t.User, Problem: p}
	}
	return nil
}
