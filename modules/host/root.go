package host

import "path/filepath"

// Root is the directory a module treats as the host's "/": "" (or "/") on a host, a
// temporary tree in unit tests. It only maps paths; modules/hostfs reads and writes what
// they name.
type Root string

// Path maps an absolute host path into the root: "/etc/hosts" stays as it is on a host and
// becomes "<root>/etc/hosts" in a test tree. A relative or unclean path is cleaned and kept
// under the root ("../x" cannot leave it).
func (r Root) Path(p string) string {
	if r.Real() {
		return p
	}
	return filepath.Join(string(r), filepath.Join("/", p))
}

// Real reports whether the root is the running system's, whose daemons may be told about
// changes and whose programs may be run.
func (r Root) Real() bool { return r == "" || r == "/" }
