package accounts

import (
	"strconv"
	"strings"
)

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	Name     string
	UID, GID int64
	Comment  string
	Home     string
	Shell    string
}

// shadowEntry is the part of an /etc/shadow line the user module manages.
type shadowEntry struct {
	Name     string
	Password string // the hash, "!" or "*" (locked or no password), "!"+hash (locked)
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	Name    string
	GID     int64
	Members []string
}

// records splits an account file into its lines' fields: empty lines, comments and
// NIS lines ("+" or "-" first) are skipped, as are lines with fewer than n fields.
func records(b []byte, n int) [][]string {
	var out [][]string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSuffix(l, "\r")
		if l == "" || l[0] == '#' || l[0] == '+' || l[0] == '-' {
			continue
		}
		f := strings.Split(l, ":")
		if len(f) < n {
			continue
		}
		out = append(out, f)
	}
	return out
}

func parseID(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v >= 0
}

// parsePasswd reads /etc/passwd (name:x:uid:gid:comment:home:shell); lines whose ids are
// not numbers are skipped.
func parsePasswd(b []byte) []passwdEntry {
	var out []passwdEntry
	for _, f := range records(b, 7) {
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			continue
		}
		out = append(out, passwdEntry{Name: f[0], UID: uid, GID: gid, Comment: f[4], Home: f[5], Shell: f[6]})
	}
	return out
}

// parseShadow reads /etc/shadow (name:password:...).
func parseShadow(b []byte) []shadowEntry {
	var out []shadowEntry
	for _, f := range records(b, 2) {
		out = append(out, shadowEntry{Name: f[0], Password: f[1]})
	}
	return out
}

// parseGroup reads /etc/group (name:x:gid:member,member).
func parseGroup(b []byte) []groupEntry {
	var out []groupEntry
	for _, f := range records(b, 4) {
		gid, ok := parseID(f[2])
		if !ok {
			continue
		}
		var members []string
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				members = append(members, m)
			}
		}
		out = append(out, groupEntry{Name: f[0], GID: gid, Members: members})
	}
	return out
}

func findUser(db []passwdEntry, name string) *passwdEntry {
	for i := range db {
		if db[i].Name == name {
			return &db[i]
		}
	}
	return nil
}

func findShadow(db []shadowEntry, name string) *shadowEntry {
	for i := range db {
		if db[i].Name == name {
			return &db[i]
		}
	}
	return nil
}

func findGroup(db []groupEntry, name string) *groupEntry {
	for i := range db {
		if db[i].Name == name {
			return &db[i]
		}
	}
	return nil
}

func groupByID(db []groupEntry, gid int64) *groupEntry {
	for i := range db {
		if db[i].GID == gid {
			return &db[i]
		}
	}
	return nil
}

// supplementary lists the groups that name user as a member, in file order.
func supplementary(db []groupEntry, user string) []string {
	var out []string
	for _, g := range db {
		for _, m := range g.Members {
			if m == user {
				out = append(out, g.Name)
				break
			}
		}
	}
	return out
}
