package generic

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

var _ modules.Runner[lineArgs] = Line{}

// lineArgs are line's arguments.
type lineArgs struct {
	Path         string  `cty:"path"`
	Line         *string `cty:"line"`
	Regexp       *string `cty:"regexp"`
	State        string  `cty:"state"`
	InsertAfter  *string `cty:"insert_after"`
	InsertBefore *string `cty:"insert_before"`
	Create       bool    `cty:"create"`
	Backup       bool    `cty:"backup"`
	Mode         *string `cty:"mode"`
	Owner        *string `cty:"owner"`
	Group        *string `cty:"group"`
}

// lineResult is what line registers.
type lineResult struct {
	// BackupFile is the backup's path, "" when none was made.
	BackupFile string `cty:"backup_file"`
}

// Run edits one line of the file. The rules, in order: with regexp, the last matching line
// is replaced (nothing changes when it already is line); without a match, or without
// regexp, a line equal to line means nothing to do; otherwise line is inserted after the
// last insert_after match (EOF: at the end), before the first insert_before match (BOF: at
// the start), or at the end when those match nothing. state = "absent" removes every line
// matching regexp, or equal to line.
func (Line) Run(ctx context.Context, env *modules.Env, args lineArgs, apply bool) (*modules.Result, error) {
	asked := filepath.Clean(args.Path)
	path := asked
	r, err := resolveFile(path)
	if err != nil {
		return nil, err
	}
	if r != nil {
		defer r.Close()
		path = r.Path()
	}
	want, err := parseMeta(ctx, args.Mode, args.Owner, args.Group)
	if err != nil {
		return nil, err
	}
	eof, bof := deref(args.InsertAfter) == "EOF", deref(args.InsertBefore) == "BOF"
	compile := func(name string, p *string, anchor bool) (*regexp.Regexp, error) {
		s := deref(p)
		if s == "" || anchor {
			return nil, nil
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("%s: not a valid regular expression: %w", name, err)
		}
		return re, nil
	}
	re, err := compile("regexp", args.Regexp, false)
	if err != nil {
		return nil, err
	}
	after, err := compile("insert_after", args.InsertAfter, eof)
	if err != nil {
		return nil, err
	}
	before, err := compile("insert_before", args.InsertBefore, bof)
	if err != nil {
		return nil, err
	}
	present := args.State != "absent"

	var data lineResult
	res := &modules.Result{Status: modules.StatusOK, Data: data}
	if path != asked {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s is a link; editing its target %s", asked, path))
	}
	var fi fs.FileInfo
	if r != nil {
		if fi, err = r.Lstat(); err != nil {
			return nil, fmt.Errorf("inspect %s: %w", path, err)
		}
	}
	exists := fi != nil
	switch {
	case !exists && !present:
		res.Msg = path + " does not exist; nothing to remove"
		return res, nil
	case !exists && !args.Create:
		return nil, fmt.Errorf("%s does not exist; set create = true to create it", path)
	case exists && !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is a %s, not a regular file", path, typeName(fi))
	}
	var old []byte
	if exists {
		if old, err = r.ReadFile(); err != nil {
			return nil, err
		}
	}
	lines := hostfs.SplitLines(old)
	var msg string
	if present {
		lines, msg = ensureLine(lines, deref(args.Line), re, after, before, eof, bof)
	} else {
		lines, msg = removeLines(lines, args.Line, re)
	}
	content := hostfs.JoinLines(lines)
	contentChanged := !exists || !bytes.Equal(content, old)

	var what []string
	if contentChanged {
		what = append(what, modules.Tense(apply, "", "would: ")+msg)
		res.Diff = contentDiff(path, bytesBlob(old), bytesBlob(content), exists, true, env.Sensitive("line"))
	}
	var metaChanges []string
	if exists {
		metaChanges = want.changes(fi)
	}
	if len(metaChanges) > 0 {
		what = append(what, modules.Tense(apply, "set ", "would set ")+strings.Join(metaChanges, ", "))
	}
	if len(what) == 0 {
		res.Msg = path + ": " + msg
		return res, nil
	}
	res.Status = modules.DiffStatus(apply)
	res.Msg = path + ": " + strings.Join(what, "; ")
	if !apply {
		return res, nil
	}
	if r == nil {
		return nil, fmt.Errorf("directory %s does not exist; create it first (file module, state = \"directory\")", filepath.Dir(path))
	}
	if contentChanged {
		if exists && args.Backup {
			if data.BackupFile, err = backupFile(env, r); err != nil {
				return nil, err
			}
			res.Data = data
		}
		if _, err := writeAtomic(ctx, env, r, content, keepOpts(fi, want)); err != nil {
			return nil, err
		}
	} else if err := want.apply(r, fi); err != nil {
		return nil, err
	}
	return res, nil
}

// keepOpts gives a rewritten file the wanted metadata, or else the old file's, or else
// 0644 and the writer's owner for a new file.
func keepOpts(fi fs.FileInfo, want meta) writeOpts {
	o := writeOpts{mode: 0o644, uid: -1, gid: -1}
	if fi != nil {
		o.mode = fi.Mode() & (fs.ModePerm | specialBits)
		if uid, gid, ok := fileOwner(fi); ok && os.Geteuid() == 0 {
			o.uid, o.gid = uid, gid
		}
	}
	if want.hasMode {
		o.mode = want.mode
	}
	if want.uid >= 0 {
		o.uid = want.uid
	}
	if want.gid >= 0 {
		o.gid = want.gid
	}
	return o
}

func ensureLine(lines []hostfs.Line, line string, re, after, before *regexp.Regexp, eof, bof bool) ([]hostfs.Line, string) {
	if re != nil {
		last := -1
		for i, l := range lines {
			if re.MatchString(l.Text) {
				last = i
			}
		}
		if last >= 0 {
			if lines[last].Text == line {
				return lines, "line already present"
			}
			out := append([]hostfs.Line(nil), lines...)
			out[last].Text = line
			return out, fmt.Sprintf("replaced line %d", last+1)
		}
	}
	for _, l := range lines {
		if l.Text == line {
			return lines, "line already present"
		}
	}
	eol := "\n"
	if len(lines) > 0 && lines[0].EOL == "\r\n" {
		eol = "\r\n" // a CRLF file gets a CRLF line
	}
	at := len(lines) // the end, unless an anchor says otherwise
	switch {
	case bof:
		at = 0
	case before != nil:
		for i, l := range lines {
			if before.MatchString(l.Text) {
				at = i
				break
			}
		}
	case after != nil && !eof:
		for i, l := range lines {
			if after.MatchString(l.Text) {
				at = i + 1
			}
		}
	}
	out := make([]hostfs.Line, 0, len(lines)+1)
	out = append(out, lines[:at]...)
	nl := hostfs.Line{Text: line, EOL: eol}
	if at == len(lines) && at > 0 && lines[at-1].EOL == "" {
		// The file ended without a newline: the old last line gets one, as it is no
		// longer last, and the new last line goes without, keeping the file's shape. An
		// empty line needs its newline, or it would not be there at all.
		out[at-1].EOL = eol
		if line != "" {
			nl.EOL = ""
		}
	}
	out = append(out, nl)
	out = append(out, lines[at:]...)
	return out, fmt.Sprintf("inserted line %d", at+1)
}

func removeLines(lines []hostfs.Line, text *string, re *regexp.Regexp) ([]hostfs.Line, string) {
	out := make([]hostfs.Line, 0, len(lines))
	removed := 0
	for _, l := range lines {
		if (re != nil && re.MatchString(l.Text)) || (re == nil && text != nil && l.Text == *text) {
			removed++
			continue
		}
		out = append(out, l)
	}
	if removed == 0 {
		return lines, "no matching line"
	}
	return out, fmt.Sprintf("removed %d line(s)", removed)
}
