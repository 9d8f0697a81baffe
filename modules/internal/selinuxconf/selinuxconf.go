// Package selinuxconf reads /etc/selinux/config the way libselinux reads it at boot, for the
// selinux module (which edits it) and the facts module (which reports it).
package selinuxconf

import (
	"strings"

	"github.com/runbook/runbook/modules/hostfs"
)

// BootMode is the mode a SELINUX= line sets as libselinux reads the file at boot
// (selinux_getenforcemode): the line must start with exactly "SELINUX=", blanks may follow,
// and the value is matched by prefix in any case, without quotes. ok is false for a line
// libselinux passes over ("SELINUX=\"disabled\"", "  SELINUX = disabled").
func BootMode(line string) (mode string, ok bool) {
	v, found := strings.CutPrefix(line, "SELINUX=")
	if !found {
		return "", false
	}
	v = strings.ToLower(strings.TrimLeft(v, " \t"))
	for _, m := range []string{"enforcing", "permissive", "disabled"} {
		if strings.HasPrefix(v, m) {
			return m, true
		}
	}
	return "", false
}

// BootPolicy is the policy a SELINUXTYPE= line names as libselinux reads it: the tag in any
// case after leading blanks, then the rest of the line with blanks trimmed. Quotes are not
// removed: SELINUXTYPE="targeted" names a policy directory called "targeted" with quotes.
func BootPolicy(line string) (policy string, ok bool) {
	t := strings.TrimLeft(line, " \t")
	const tag = "SELINUXTYPE="
	if len(t) < len(tag) || !strings.EqualFold(t[:len(tag)], tag) {
		return "", false
	}
	return strings.TrimSpace(t[len(tag):]), true
}

// Parse returns the mode and policy a config file sets at boot, as libselinux reads
// it: the first SELINUX= line it understands, and the last SELINUXTYPE= line.
func Parse(b []byte) (mode, policy string) {
	for _, l := range hostfs.SplitLines(b) {
		if m, ok := BootMode(l.Text); ok && mode == "" {
			mode = m
		}
		if p, ok := BootPolicy(l.Text); ok {
			policy = p
		}
	}
	return mode, policy
}
