// Package hostfs holds the file operations every module family needs on the host: replacing
// a file atomically, removing one, reading one that may be missing, and, through a Ref,
// everything the file modules do to a path. One implementation, so every module reaches
// files the same careful way: paths are resolved one component at a time from open
// directories, a link is followed only when its owner may choose where it leads (see
// trusted), and every change acts on descriptors, so nothing swapped in between a check and
// a change redirects it. The controller writes its own files (reports, metrics, formatted
// runbooks, helper stamps) with it too.
package hostfs

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// Options say how WriteAtomic makes the new file.
type Options struct {
	// Mode is the new file's permission bits, set explicitly (unaffected by the umask).
	Mode fs.FileMode
	// UID and GID own the new file; -1 leaves the writer's. Only root can give a file to
	// another user (others may still pick one of their groups).
	UID, GID int
	// MkdirAll makes missing parent directories (mode 0755).
	MkdirAll bool
	// Validate, when set, is called before the new file replaces path, with the path of a
	// copy of it: the same name, content, mode and owner, in a new directory that only the
	// user runbook runs as may enter (on Linux; elsewhere the temporary file itself). An
	// error leaves path unchanged and is returned as it is.
	Validate func(copy string) error
}

// KeepOwner returns fi's owner, for Options.UID/GID that keep an existing file's owner when
// running as root; -1, -1 (the writer's) when fi is nil or the writer is not root, who could
// not give the file away anyway.
func KeepOwner(fi fs.FileInfo) (uid, gid int) {
	if fi != nil && os.Geteuid() == 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return int(st.Uid), int(st.Gid)
		}
	}
	return -1, -1
}

// fill writes what src holds to f, a new file that is to become path, gives it o's owner
// and mode, and syncs it. The owner comes first, as chown clears the setuid and setgid
// bits that the mode may set.
func fill(f *os.File, path string, src io.Reader, o Options) error {
	if _, err := io.Copy(f, src); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if o.UID >= 0 || o.GID >= 0 {
		if err := f.Chown(o.UID, o.GID); err != nil {
			return fmt.Errorf("set owner of %s: %w", path, err)
		}
	}
	if err := f.Chmod(o.Mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	return nil
}

// Line is one line of a text file and the terminator it had ("\n", "\r\n", or "" for a
// last line without one), so that lines a module does not touch are written back byte for
// byte.
type Line struct {
	Text, EOL string
}

// SplitLines splits file content into lines, keeping each one's terminator.
func SplitLines(b []byte) []Line {
	var out []Line
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, Line{Text: string(b)})
			break
		}
		l := Line{Text: string(b[:i]), EOL: "\n"}
		if strings.HasSuffix(l.Text, "\r") {
			l.Text, l.EOL = l.Text[:len(l.Text)-1], "\r\n"
		}
		out = append(out, l)
		b = b[i+1:]
	}
	return out
}

// JoinLines is the inverse of SplitLines.
func JoinLines(lines []Line) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l.Text)
		b.WriteString(l.EOL)
	}
	return b.Bytes()
}

// ShellUnquote reads a value of a shell-style variable file (ifcfg, os-release,
// /etc/machine-info) the way their readers do: double quotes with backslash escapes of
// " \ $ and `, single quotes literally, a backslash outside quotes escaping the next
// character, and an unquoted blank or a leading # ending the value.
func ShellUnquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				b.WriteString(s[i+1:])
				return b.String()
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.ContainsRune("\"\\$`", rune(s[i+1])) {
					i++
				}
				b.WriteByte(s[i])
			}
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case ' ', '\t':
			return b.String()
		case '#':
			if i == 0 {
				return b.String()
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ParseEnvFile reads KEY=value lines (an optional "export " before the key) as
// os-release(5) and /etc/machine-info have them, skipping blank and # lines; values are
// unquoted with ShellUnquote. Where a key repeats, the last one wins, as for the shell.
func ParseEnvFile(text string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = ShellUnquote(strings.TrimSpace(v))
	}
	return out
}
