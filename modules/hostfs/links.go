package hostfs

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
)

// maxLinks bounds the links one resolution follows, as the kernel does (40), so that a
// loop ends in an error instead of going round for ever.
const maxLinks = 40

// How says how Resolve treats the path's last component; parent directories that are
// links are always followed (when trusted).
type How int

const (
	// NoFollow resolves to the last component itself, a link included: the operations
	// on the Ref then act on the link (replace it, remove it, change its owner).
	NoFollow How = iota
	// FollowLast follows a link in the last component too (when trusted), so the Ref
	// names what the link leads to.
	FollowLast
	// MakeParents is NoFollow that creates missing parent directories (mode 0755, less
	// the umask) instead of failing.
	MakeParents
)

// trusted is the rule for following a link: its owner is root, the user runbook runs as,
// or the owner of what it leads to. A link anyone else made may point anywhere, and
// following it would let that user choose the file root reads or writes: the rule of the
// kernel's fs.protected_symlinks, applied everywhere since runbook resolves links itself.
func trusted(linkUID, targetUID uint32) bool {
	return linkUID == 0 || linkUID == targetUID || int64(linkUID) == int64(os.Geteuid())
}

// UntrustedLinkError is a link that Resolve refuses to follow (see trusted).
type UntrustedLinkError struct {
	Link      string // the link's path
	Target    string // the resolved path it leads to
	LinkUID   int
	TargetUID int
}

func (e *UntrustedLinkError) Error() string {
	return fmt.Sprintf("%s is a link owned by %s to %s, owned by %s: not followed, as only links owned by root, by the user runbook runs as or by their target's owner are (chown -h the link if it is meant)",
		e.Link, userName(e.LinkUID), e.Target, userName(e.TargetUID))
}

// DanglingLinkError is a link whose target does not exist. It counts as a missing file
// (errors.Is fs.ErrNotExist), which is what reading through it finds.
type DanglingLinkError struct {
	Link   string // the link's path
	Target string // what the link says, as it says it
}

func (e *DanglingLinkError) Error() string {
	return fmt.Sprintf("%s is a link to %s, which does not exist", e.Link, e.Target)
}

func (e *DanglingLinkError) Unwrap() error { return fs.ErrNotExist }

// userName renders a uid for a message: "nobody (uid 65534)".
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}
