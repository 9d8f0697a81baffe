package accounts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/runbook/runbook/modules/host"
)

// shadowSim plays shadow-utils on a test root: it edits etc/passwd, etc/shadow and
// etc/group as groupadd, useradd and their kin do, for the options the modules use, and
// records every command line and standard input it was given.
type shadowSim struct {
	t    *testing.T
	root string
	mu   sync.Mutex
	argv [][]string
	in   []string
}

func newSim(t *testing.T, passwd, shadow, group string) (*shadowSim, *machine) {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(root+"/etc", 0o755)
	for name, content := range map[string]string{"passwd": passwd, "shadow": shadow, "group": group} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := &shadowSim{t: t, root: root}
	return s, &machine{root: host.Root(root), run: s}
}

func (s *shadowSim) LookPath(name string) string { return "/usr/sbin/" + name }

func (s *shadowSim) file(name string) [][]string {
	b, err := os.ReadFile(filepath.Join(s.root, "etc", name))
	if err != nil {
		s.t.Fatal(err)
	}
	var out [][]string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l != "" {
			out = append(out, strings.Split(l, ":"))
		}
	}
	return out
}

func (s *shadowSim) write(name string, recs [][]string) {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(strings.Join(r, ":") + "\n")
	}
	if err := os.WriteFile(filepath.Join(s.root, "etc", name), []byte(b.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func find(recs [][]string, name string) int {
	return slices.IndexFunc(recs, func(r []string) bool { return r[0] == name })
}

func fail(msg string, a ...any) (host.Result, error) {
	return host.Result{RC: 1, Stderr: fmt.Sprintf(msg, a...)}, nil
}

// flags splits "-x value ... -- name" by the options that take a value.
func flags(argv []string, valued string) (map[string]string, string) {
	f := map[string]string{}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			return f, argv[i+1]
		}
		if strings.Contains(valued, a[1:]) && len(a) == 2 {
			f[a] = argv[i+1]
			i++
		} else {
			f[a] = ""
		}
	}
	return f, ""
}

func (s *shadowSim) Run(_ context.Context, c host.Cmd) (host.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.argv = append(s.argv, slices.Clone(c.Argv))
	s.in = append(s.in, c.Stdin)
	passwd, shadow, group := s.file("passwd"), s.file("shadow"), s.file("group")
	switch c.Argv[0] {
	case "groupadd":
		f, name := flags(c.Argv, "g")
		if find(group, name) >= 0 {
			return fail("groupadd: group '%s' already exists", name)
		}
		gid := f["-g"]
		if gid == "" {
			gid = strconv.Itoa(1000 + len(group))
		}
		s.write("group", append(group, []string{name, "x", gid, ""}))
	case "groupmod":
		f, name := flags(c.Argv, "g")
		i := find(group, name)
		if i < 0 {
			return fail("groupmod: group '%s' does not exist", name)
		}
		group[i][2] = f["-g"]
		s.write("group", group)
	case "groupdel":
		_, name := flags(c.Argv, "")
		i := find(group, name)
		if i < 0 {
			return fail("groupdel: group '%s' does not exist", name)
		}
		s.write("group", slices.Delete(group, i, i+1))
	case "useradd", "usermod":
		f, name := flags(c.Argv, "ugGdsc")
		i := find(passwd, name)
		if c.Argv[0] == "useradd" {
			if i >= 0 {
				return fail("useradd: user '%s' already exists", name)
			}
			uid := strconv.Itoa(1000 + len(passwd))
			gid := uid
			if _, ok := f["-g"]; !ok {
				group = append(group, []string{name, "x", gid, ""})
			}
			passwd = append(passwd, []string{name, "x", uid, gid, "", "/home/" + name, "/bin/sh"})
			shadow = append(shadow, []string{name, "!", "19000", "0", "99999", "7", "", "", ""})
			i = len(passwd) - 1
		} else if i < 0 {
			return fail("usermod: user '%s' does not exist", name)
		}
		for opt, v := range f {
			switch opt {
			case "-u":
				passwd[i][2] = v
			case "-g":
				g := find(group, v)
				if g < 0 {
					return fail("%s: group '%s' does not exist", c.Argv[0], v)
				}
				passwd[i][3] = group[g][2]
			case "-d":
				passwd[i][5] = v
			case "-s":
				passwd[i][6] = v
			case "-c":
				passwd[i][4] = v
			case "-L":
				j := find(shadow, name)
				shadow[j][1] = "!" + shadow[j][1]
			case "-U":
				j := find(shadow, name)
				shadow[j][1] = strings.TrimPrefix(shadow[j][1], "!")
			}
		}
		if v, ok := f["-G"]; ok {
			want := strings.Split(v, ",")
			for _, g := range want {
				if find(group, g) < 0 {
					return fail("%s: group '%s' does not exist", c.Argv[0], g)
				}
			}
			_, appendTo := f["-a"]
			for _, g := range group {
				members := slices.DeleteFunc(strings.Split(g[3], ","), func(m string) bool { return m == "" })
				in := slices.Contains(members, name)
				switch {
				case slices.Contains(want, g[0]) && !in:
					members = append(members, name)
				case !slices.Contains(want, g[0]) && in && !appendTo:
					members = slices.DeleteFunc(members, func(m string) bool { return m == name })
				}
				g[3] = strings.Join(members, ",")
			}
		}
		s.write("passwd", passwd)
		s.write("shadow", shadow)
		s.write("group", group)
	case "userdel":
		_, name := flags(c.Argv, "")
		i := find(passwd, name)
		if i < 0 {
			return fail("userdel: user '%s' does not exist", name)
		}
		s.write("passwd", slices.Delete(passwd, i, i+1))
		if j := find(shadow, name); j >= 0 {
			s.write("shadow", slices.Delete(shadow, j, j+1))
		}
		for _, g := range group {
			g[3] = strings.Join(slices.DeleteFunc(strings.Split(g[3], ","), func(m string) bool { return m == name }), ",")
		}
		s.write("group", group)
	case "chpasswd":
		if len(c.Argv) != 2 || c.Argv[1] != "-e" {
			return fail("chpasswd: want -e")
		}
		for _, l := range strings.Split(strings.TrimSuffix(c.Stdin, "\n"), "\n") {
			name, hash, ok := strings.Cut(l, ":")
			j := find(shadow, name)
			if !ok || j < 0 {
				return fail("chpasswd: line 1: user '%s' does not exist", name)
			}
			shadow[j][1] = hash
		}
		s.write("shadow", shadow)
	default:
		return fail("%s: not simulated", c.Argv[0])
	}
	return host.Result{}, nil
}

// snapshot is the three files, for moduletest's check-mode guard.
func (s *shadowSim) snapshot(testing.TB) string {
	var b strings.Builder
	for _, n := range []string{"passwd", "shadow", "group"} {
		x, _ := os.ReadFile(filepath.Join(s.root, "etc", n))
		b.Write(x)
	}
	return b.String()
}
