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

// Permission bits of a directory, as stat(2) gives them.
const (
	modeGroupOtherWrite = 0o022
	modeOtherWrite      = 0o002
	modeSticky          = 0o1000
)

// linkFacts are what the rule for following a link looks at: the link itself, the
// directory that holds it, and what it leads to.
type linkFacts struct {
	linkUID   uint32
	names     uint64 // the link's hard link count
	dirUID    uint32
	dirMode   uint32 // the directory's permission bits, sticky included
	targetUID uint32
}

// linkReason says why a link is not followed.
type linkReason int

const (
	// reasonOwner: the link's owner is neither root nor the user runbook runs as, and
	// does not own what it leads to.
	reasonOwner linkReason = iota
	// reasonNames: the link has more than one name.
	reasonNames
	// reasonDirOwner: a link of root or of runbook's user sits in another user's directory.
	reasonDirOwner
	// reasonDirWritable: a link of root or of runbook's user sits in a directory that
	// its group or others may write, without the sticky bit.
	reasonDirWritable
)

// trusted is the rule for following a link. Whoever could have put a link at its name
// chooses what root reads or writes there, so a link is followed only when nobody else
// could have:
//
//   - A link owned by a user other than root that leads to a file of that same user is
//     followed wherever it is, as long as it has one name: whoever moved it there, it only
//     leads where its owner may write anyway. A second name (a hard link to the link,
//     which the kernel allows while fs.protected_hardlinks is 0) could put it where its
//     owner never did, leading another user's task to that user's files.
//   - Any other link owned by root or by the user runbook runs as is followed only in a
//     directory that belongs to root or to that user and that its group and others may not
//     write, sticky or not: whoever may write a directory may rename a link of root's into
//     it from another directory of theirs (the sticky bit stops renaming out, not in).
//     Nobody else can put a link, or a second name of one, in such a directory.
//   - Any other link (owned by another user and leading to someone else's file) is not
//     followed.
func trusted(f linkFacts) (linkReason, bool) {
	me := uint32(os.Geteuid())
	switch {
	case f.linkUID == f.targetUID && f.linkUID != 0:
		if f.names > 1 {
			return reasonNames, false
		}
		return 0, true
	case f.linkUID != 0 && f.linkUID != me:
		return reasonOwner, false
	case f.dirUID != 0 && f.dirUID != me:
		return reasonDirOwner, false
	case f.dirMode&modeGroupOtherWrite != 0:
		return reasonDirWritable, false
	}
	return 0, true
}

// UntrustedLinkError is a link that Resolve refuses to follow (see trusted).
type UntrustedLinkError struct {
	Link      string // the link's path
	Target    string // the resolved path it leads to
	LinkUID   int
	TargetUID int
	// Names is the link's hard link count.
	Names int
	// Dir is the directory that holds the link, DirUID and DirGID its owner and DirMode
	// its permission bits.
	Dir            string
	DirUID, DirGID int
	DirMode        uint32
	reason         linkReason
}

func (e *UntrustedLinkError) Error() string {
	head := fmt.Sprintf("%s is a link owned by %s to %s", e.Link, userName(e.LinkUID), e.Target)
	switch e.reason {
	case reasonNames:
		return fmt.Sprintf("%s, with %d names (hard links to one link): not followed, as another name can put a link where its owner never did", head, e.Names)
	case reasonDirOwner:
		return fmt.Sprintf("%s, in %s, which belongs to %s: not followed, as that user could have moved the link there (a link of root or of the user runbook runs as is followed only in a directory of theirs that no one else may write)",
			head, e.Dir, userName(e.DirUID))
	case reasonDirWritable:
		who := "group " + groupName(e.DirGID)
		if e.DirMode&modeOtherWrite != 0 {
			who = "anyone"
		}
		return fmt.Sprintf("%s, in %s, which %s may write (mode %04o): not followed, as they could have moved the link there (a link of root or of the user runbook runs as is followed only in a directory of theirs that no one else may write)",
			head, e.Dir, who, e.DirMode)
	}
	return fmt.Sprintf("%s, owned by %s: not followed, as only links owned by root, by the user runbook runs as or by their target's owner are (chown -h the link if it is meant)",
		head, userName(e.TargetUID))
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

// HardLinkError is a regular file with more than one name that belongs to someone other
// than the owner of the directory it was found in: another user may have linked a file of
// someone else's there (the kernel allows that while fs.protected_hardlinks is 0), so it
// is neither read nor has its owner or mode changed.
type HardLinkError struct {
	Path    string
	UID     int // the file's owner
	Names   int
	DirUID  int    // the owner of the directory it was found in
	DirMode uint32 // that directory's permission bits
}

func (e *HardLinkError) Error() string {
	if e.UID == e.DirUID {
		return fmt.Sprintf("%s has %d names (hard links), and its directory may be written by others (mode %04o): not read or changed, as another user may have linked someone else's file there (remove the extra names if it is meant)",
			e.Path, e.Names, e.DirMode)
	}
	return fmt.Sprintf("%s has %d names (hard links) and belongs to %s, while its directory belongs to %s: not read or changed, as another user may have linked someone else's file there (remove the extra names, or give the file to the directory's owner, if it is meant)",
		e.Path, e.Names, userName(e.UID), userName(e.DirUID))
}

// userName renders a uid for a message: "nobody (uid 65534)".
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// groupName renders a gid for a message: "adm (gid 4)".
func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return fmt.Sprintf("%s (gid %d)", g.Name, gid)
	}
	return fmt.Sprintf("gid %d", gid)
}
