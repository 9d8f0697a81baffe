package transport

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// This file reads OpenSSH client configuration files the way ssh(1) does: lines are
// evaluated in file order, Host and Match lines switch the following options on or off for
// the host being resolved, Include reads more files in place, and the first value obtained
// for an option wins. See ssh_config(5) and docs/transport.md for what runbook honours.

// maxIncludeDepth bounds nested Include lines, as OpenSSH's READCONF_MAX_DEPTH does.
const maxIncludeDepth = 16

// maxIncludedFiles bounds the files one evaluation reads through Include lines (each pass),
// so a glob over a huge directory or a fan-out of nested globs cannot stall a run.
const maxIncludedFiles = 1024

// confLine is one option line of an ssh_config file.
type confLine struct {
	kw   string   // the keyword, lower case
	args []string // its arguments, split as ssh splits them (whitespace, "double quotes")
	rest string   // everything after the keyword and its separator, as written
	n    int      // line number
}

// confValue is the value an option obtained, and where it came from.
type confValue struct {
	kw    string
	args  []string
	rest  string
	where string // file:line
}

func (v confValue) arg() string {
	if len(v.args) == 0 {
		return ""
	}
	return v.args[0]
}

// sshOptions are the options obtained for one host: the first value of each option, and
// every value of the options that accumulate (IdentityFile, CertificateFile).
type sshOptions struct {
	vals  map[string]confValue
	lists map[string][]confValue
}

func (o *sshOptions) get(kw string) (confValue, bool) {
	v, ok := o.vals[strings.ToLower(kw)]
	return v, ok
}

func (o *sshOptions) str(kw string) string {
	v := o.vals[strings.ToLower(kw)]
	return v.arg()
}

// ConfigError is an ssh_config line runbook cannot follow: a syntax error, an unknown
// option, a Match criterion it does not evaluate (exec), an Include too deep or unreadable.
type ConfigError struct {
	Where string // file:line
	Msg   string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("ssh config %s: %s", e.Where, e.Msg) }

// evaluation is one pass of ssh's configuration parsing for one host.
type evaluation struct {
	host     string // what Host patterns match: the name, or in the final pass the HostName
	original string // the name as given (Match originalhost, %n)
	final    bool   // this is the final pass (Match final)

	presetUser string // the inventory's user
	localUser  string
	home       string

	wantFinal bool // a Match line asks for a final pass
	included  int  // files read through Include in this pass
	opts      *sshOptions
}

// evaluateConfig runs ssh's configuration passes for name over the files (each with
// whether it is a user file: relative Includes are then in ~/.ssh, else in /etc/ssh).
// name is what ssh is given: the inventory's address if it has one, else its name.
func evaluateConfig(files []configSource, name, presetUser string) (*sshOptions, error) {
	opts := &sshOptions{vals: map[string]confValue{}, lists: map[string][]confValue{}}
	ev := &evaluation{host: name, original: name, presetUser: presetUser,
		localUser: localUser(), home: homeDir(), opts: opts}
	for _, f := range files {
		active := true
		if err := ev.file(f.path, f.user, f.explicit, &active, false, 0, f.checkPerm); err != nil {
			return nil, err
		}
	}
	if !ev.wantFinal {
		return opts, nil
	}
	// As ssh: the configuration is read once more, with Host patterns now matching the
	// host name to connect to, and Match final true. Values already obtained stay.
	ev.final = true
	ev.included = 0
	ev.host = strings.ToLower(ev.hostName())
	for _, f := range files {
		active := true
		if err := ev.file(f.path, f.user, f.explicit, &active, false, 0, f.checkPerm); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// hostName is the host name obtained so far: HostName with %h expanded, else the name.
func (ev *evaluation) hostName() string {
	if v, ok := ev.opts.get("hostname"); ok {
		return expander{host: ev.original}.text(v.arg(), "h")
	}
	return ev.original
}

// remoteUser is the user obtained so far, else the local user (as ssh's Match user sees it).
func (ev *evaluation) remoteUser() string {
	if ev.presetUser != "" {
		return ev.presetUser
	}
	if v := ev.opts.str("user"); v != "" {
		return v
	}
	return ev.localUser
}

// configSource is a top-level configuration file.
type configSource struct {
	path     string
	user     bool // a user file (-F or ~/.ssh/config), not /etc/ssh/ssh_config
	explicit bool // named with -F: it must exist
	// checkPerm: as ssh, the file must be owned by root or the user and writable by no one
	// else (~/.ssh/config; ssh does not check a -F file, nor /etc/ssh/ssh_config).
	checkPerm bool
}

func (ev *evaluation) file(path string, user, mustExist bool, active *bool, never bool, depth int, checkPerm bool) error {
	if depth > maxIncludeDepth {
		return &ConfigError{Where: path, Msg: fmt.Sprintf("more than %d nested Include levels", maxIncludeDepth)}
	}
	lines, err := parsedConfig(path, checkPerm || depth > 0)
	if err != nil {
		if !mustExist && errors.Is(err, fs.ErrNotExist) || depth > 0 && errors.Is(err, errIsDir) {
			return nil // as ssh: a directory an Include glob matches reads as empty
		}
		return err
	}
	for _, l := range lines {
		where := fmt.Sprintf("%s:%d", path, l.n)
		switch l.kw {
		case "host":
			*active = !never && ev.matchHost(l.args)
		case "match":
			ok, err := ev.match(l.args, where)
			if err != nil {
				return err
			}
			*active = !never && ok
		case "include":
			if err := ev.include(l, where, user, active, never, depth); err != nil {
				return err
			}
		default:
			if !knownOption(l.kw) && !ev.ignoredUnknown(l.kw) {
				return &ConfigError{Where: where, Msg: fmt.Sprintf("unknown option %q (OpenSSH refuses it too; IgnoreUnknown can name it)", l.kw)}
			}
			if *active {
				ev.set(l, where)
			}
		}
	}
	return nil
}

// set records an option's value unless one was obtained before.
func (ev *evaluation) set(l confLine, where string) {
	v := confValue{kw: l.kw, args: l.args, rest: l.rest, where: where}
	switch l.kw {
	case "identityfile", "certificatefile":
		ev.opts.lists[l.kw] = append(ev.opts.lists[l.kw], v)
		return
	case "proxyjump", "proxycommand":
		// One of the two: whichever is obtained first wins, the other is then ignored.
		if _, ok := ev.opts.vals["proxy"]; !ok {
			ev.opts.vals["proxy"] = v
		}
		return
	}
	if _, ok := ev.opts.vals[l.kw]; !ok {
		ev.opts.vals[l.kw] = v
	}
}

func (ev *evaluation) ignoredUnknown(kw string) bool {
	v, ok := ev.opts.get("ignoreunknown")
	return ok && matchPatternList(kw, v.arg(), true) == 1
}

// matchHost evaluates a Host line's patterns: any negated pattern that matches makes it
// false, else any pattern that matches makes it true.
func (ev *evaluation) matchHost(patterns []string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		if wildcardMatch(strings.TrimPrefix(p, "!"), ev.host) {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// match evaluates a Match line's criteria, all of which must hold. exec is refused (runbook
// does not run commands to decide where a host goes), and so is a criterion it does not know.
func (ev *evaluation) match(args []string, where string) (bool, error) {
	if len(args) == 0 {
		return false, &ConfigError{Where: where, Msg: "Match needs criteria"}
	}
	result := true
	for i := 0; i < len(args); i++ {
		crit := strings.ToLower(args[i])
		neg := strings.HasPrefix(crit, "!")
		crit = strings.TrimPrefix(crit, "!")
		var r bool
		switch crit {
		case "all":
			// Alone, or after one canonical or final.
			if i != len(args)-1 || i > 1 || (i == 1 && !isFinalOrCanonical(args[0])) {
				return false, &ConfigError{Where: where, Msg: "Match all cannot be combined with other criteria (but canonical or final before it)"}
			}
			r = true
		case "canonical":
			// runbook never canonicalizes host names, but as in ssh the final pass counts
			// as canonical (ssh's post_canon): true there, false before.
			r = ev.final
		case "final":
			ev.wantFinal = true
			r = ev.final
		case "host", "originalhost", "user", "localuser", "exec":
			if i+1 == len(args) {
				return false, &ConfigError{Where: where, Msg: fmt.Sprintf("Match %s needs an argument", crit)}
			}
			i++
			arg := args[i]
			switch crit {
			case "host":
				r = matchPatternList(strings.ToLower(ev.hostNameForMatch()), arg, true) == 1
			case "originalhost":
				r = matchPatternList(strings.ToLower(ev.original), arg, true) == 1
			case "user":
				r = matchPatternList(ev.remoteUser(), arg, false) == 1
			case "localuser":
				r = matchPatternList(ev.localUser, arg, false) == 1
			case "exec":
				if !result {
					continue // ssh does not run it when an earlier criterion failed
				}
				return false, &ConfigError{Where: where, Msg: fmt.Sprintf("Match exec %q: runbook does not run commands to evaluate ssh_config; use Host or Match host/user patterns, or -F a file without it", arg)}
			}
		default:
			return false, &ConfigError{Where: where, Msg: fmt.Sprintf("Match criterion %q is not supported (runbook evaluates all, host, originalhost, user, localuser, canonical and final)", args[i])}
		}
		if r == neg {
			result = false
		}
	}
	return result, nil
}

func isFinalOrCanonical(arg string) bool {
	a := strings.ToLower(strings.TrimPrefix(arg, "!"))
	return a == "final" || a == "canonical"
}

// hostNameForMatch is what Match host compares: in the final pass the host name decided,
// before it the HostName obtained so far (with %h) or the name.
func (ev *evaluation) hostNameForMatch() string {
	if ev.final {
		return ev.host
	}
	return ev.hostName()
}

// include reads the files an Include line names, in place. A relative name is in ~/.ssh
// for a user file and in /etc/ssh for the system one; names may be glob patterns, read in
// lexical order; a pattern that matches nothing is no error. An Include under a Host or
// Match that does not apply reads its files without letting them apply anything.
func (ev *evaluation) include(l confLine, where string, user bool, active *bool, never bool, depth int) error {
	if len(l.args) == 0 {
		return &ConfigError{Where: where, Msg: "Include needs a file name"}
	}
	outer := *active
	for _, arg := range l.args {
		p := arg
		switch {
		case strings.HasPrefix(p, "~") && !user:
			return &ConfigError{Where: where, Msg: fmt.Sprintf("Include %q: a system configuration file cannot include from a home directory", arg)}
		case p == "~" || strings.HasPrefix(p, "~/"):
			p = filepath.Join(ev.home, strings.TrimPrefix(p, "~"))
		case strings.HasPrefix(p, "~"):
			return &ConfigError{Where: where, Msg: fmt.Sprintf("Include %q: ~user is not supported", arg)}
		case !strings.HasPrefix(p, "/") && user:
			p = filepath.Join(ev.home, ".ssh", p)
		case !strings.HasPrefix(p, "/"):
			p = filepath.Join("/etc/ssh", p)
		}
		for _, m := range includeGlob(p) {
			if ev.included++; ev.included > maxIncludedFiles {
				return &ConfigError{Where: where, Msg: fmt.Sprintf("Include %q: more than %d included files in all", arg, maxIncludedFiles)}
			}
			if err := ev.file(m, user, false, active, never || !outer, depth+1, true); err != nil {
				return err
			}
			// A Host or Match in the included file ends with it.
			*active = outer
		}
	}
	return nil
}

// matchPatternList matches s against a comma-separated list of patterns, some negated
// with '!': -1 if a negated pattern matches, 1 if another one does, 0 if none does, as
// OpenSSH's match_pattern_list. fold compares patterns in lower case.
func matchPatternList(s, list string, fold bool) int {
	got := 0
	for _, p := range strings.Split(list, ",") {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if fold {
			p = strings.ToLower(p)
		}
		if wildcardMatch(p, s) {
			if neg {
				return -1
			}
			got = 1
		}
	}
	return got
}

// splitConfigLine splits a line into keyword, arguments and the text after the keyword,
// as ssh 9.2 does: the keyword ends at whitespace or '=' (one '=' may separate it from the
// arguments); the arguments are split as argv_split does (splitArgs), except Match's,
// which ssh still splits on whitespace with "double quotes". ok is false for a blank or
// comment line.
func splitConfigLine(line string) (kw string, args []string, rest string, ok bool, err error) {
	line = strings.TrimRight(line, " \t\r\n\f")
	s := strings.TrimLeft(line, " \t")
	if s == "" || s[0] == '#' {
		return "", nil, "", false, nil
	}
	end := strings.IndexAny(s, " \t=")
	if end < 0 {
		end = len(s)
	}
	kw, s = strings.ToLower(s[:end]), s[end:]
	s = strings.TrimLeft(s, " \t")
	if strings.HasPrefix(s, "=") {
		s = strings.TrimLeft(s[1:], " \t")
	}
	rest = s
	if kw == "match" {
		args, err = splitMatchArgs(s)
	} else {
		args, err = splitArgs(s)
	}
	if err != nil {
		return "", nil, "", false, err
	}
	if len(args) == 0 {
		return "", nil, "", false, fmt.Errorf("%s: missing argument", kw)
	}
	return kw, args, rest, true, nil
}

// splitArgs splits an option's arguments as OpenSSH's argv_split (with comments on): they
// are separated by spaces and tabs; a '#' where an argument would start ends the line;
// within an argument, '...' and "..." quote (a"b c" is ab c) and '\' escapes a quote, a
// '\' or, outside quotes, a space (another '\' stays as written).
func splitArgs(s string) ([]string, error) {
	var args []string
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\t' {
			continue
		}
		if s[i] == '#' {
			break
		}
		var b strings.Builder
		var quote byte
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '"' || s[i+1] == '\\' || quote == 0 && s[i+1] == ' '):
				i++
				b.WriteByte(s[i])
			case quote == 0 && (c == ' ' || c == '\t'):
				goto done
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			case quote != 0 && c == quote:
				quote = 0
			default:
				b.WriteByte(c)
			}
		}
		if quote != 0 {
			return nil, errors.New("invalid quotes: unterminated quote")
		}
	done:
		args = append(args, b.String())
	}
	return args, nil
}

// splitMatchArgs splits a Match line's criteria as ssh 9.2's strdelim: whitespace
// separates them, "double quotes" group, and an argument starting with '#' starts a
// comment.
func splitMatchArgs(s string) ([]string, error) {
	var args []string
	for s != "" {
		if s[0] == '#' {
			break
		}
		var a string
		if s[0] == '"' {
			e := strings.IndexByte(s[1:], '"')
			if e < 0 {
				return nil, errors.New("unterminated quote")
			}
			a, s = s[1:1+e], s[2+e:]
			if s != "" && s[0] != ' ' && s[0] != '\t' {
				return nil, errors.New("text right after a closing quote")
			}
		} else {
			e := strings.IndexAny(s, " \t")
			if e < 0 {
				e = len(s)
			}
			a, s = s[:e], s[e:]
		}
		args = append(args, a)
		s = strings.TrimLeft(s, " \t")
	}
	return args, nil
}

// singleValued are the options runbook reads that take one argument: ssh refuses more
// ("extra arguments at end of line"), so does runbook, whether or not the line applies.
var singleValued = map[string]bool{
	"hostname": true, "port": true, "user": true, "identityfile": true, "certificatefile": true,
	"hostkeyalias": true, "stricthostkeychecking": true, "connecttimeout": true, "batchmode": true,
	"identitiesonly": true, "identityagent": true, "ignoreunknown": true, "canonicalizehostname": true,
	"refuseconnection": true, "proxyusefdpass": true, "checkhostip": true, "bindaddress": true,
	"bindinterface": true, "revokedhostkeys": true, "serveraliveinterval": true, "serveralivecountmax": true,
	"passwordauthentication": true, "pubkeyauthentication": true, "kbdinteractiveauthentication": true,
}

var errIsDir = errors.New("is a directory")

// maxConfigSize bounds one ssh_config file.
const maxConfigSize = 4 << 20

func parseConfig(path string, data []byte) ([]confLine, error) {
	var out []confLine
	for i, line := range strings.Split(string(data), "\n") {
		kw, args, rest, ok, err := splitConfigLine(line)
		if err != nil {
			return nil, &ConfigError{Where: fmt.Sprintf("%s:%d", path, i+1), Msg: err.Error()}
		}
		if ok && singleValued[kw] && len(args) > 1 {
			return nil, &ConfigError{Where: fmt.Sprintf("%s:%d", path, i+1), Msg: fmt.Sprintf("%s takes one argument, not %d (OpenSSH refuses it too: extra arguments at end of line; quote a value with spaces)", kw, len(args))}
		}
		if ok {
			out = append(out, confLine{kw: kw, args: args, rest: rest, n: i + 1})
		}
	}
	return out, nil
}

// parsedConfigs keeps each ssh_config file parsed once while it is unchanged (same size,
// mtime and inode): a run resolves every host against the same files. Parsed lines are
// only read afterwards.
var parsedConfigs struct {
	sync.Mutex
	m map[string]parsedEntry
}

type parsedEntry struct {
	size, ino int64
	mtime     time.Time
	lines     []confLine
}

// parsedConfig reads and parses one file. An included file must, as ssh requires, be owned
// by root or the user and be writable by no one else.
func parsedConfig(p string, checkPerm bool) ([]confLine, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("ssh config %s: %w", p, errIsDir)
	}
	var ino int64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = int64(sys.Ino)
		if checkPerm && ((sys.Uid != 0 && int(sys.Uid) != os.Getuid()) || st.Mode().Perm()&0o022 != 0) {
			return nil, fmt.Errorf("ssh config %s: bad owner or permissions (it must be yours or root's and writable by no one else)", p)
		}
	}
	parsedConfigs.Lock()
	e, ok := parsedConfigs.m[p]
	parsedConfigs.Unlock()
	if ok && e.size == st.Size() && e.ino == ino && e.mtime.Equal(st.ModTime()) {
		return e.lines, nil
	}
	if st.Size() > maxConfigSize {
		return nil, fmt.Errorf("ssh config %s: larger than %d bytes", p, maxConfigSize)
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", p, err)
	}
	lines, err := parseConfig(p, data)
	if err != nil {
		return nil, err
	}
	parsedConfigs.Lock()
	if parsedConfigs.m == nil {
		parsedConfigs.m = map[string]parsedEntry{}
	}
	parsedConfigs.m[p] = parsedEntry{size: st.Size(), ino: ino, mtime: st.ModTime(), lines: lines}
	parsedConfigs.Unlock()
	return lines, nil
}

// sshOptionNames are the client options OpenSSH knows (9.x and 10.x, with Debian's GSSAPI
// ones, the deprecated names it still accepts, and macOS's UseKeychain, which Apple's ssh
// accepts and which only concerns its keychain). Another keyword is an error, as in ssh, unless an
// IgnoreUnknown obtained before names it. What runbook does with each is in
// docs/transport.md; ResolveTarget reads the ones it honours or refuses.
var sshOptionNames = strings.Fields(`
addkeystoagent addressfamily batchmode bindaddress bindinterface canonicaldomains
canonicalizefallbacklocal canonicalizehostname canonicalizemaxdots canonicalizepermittedcnames
casignaturealgorithms certificatefile challengeresponseauthentication channeltimeout
checkhostip ciphers clearallforwardings compression connectionattempts connecttimeout
controlmaster controlpath controlpersist dynamicforward enableescapecommandline
enablesshkeysign escapechar exitonforwardfailure fingerprinthash forkafterauthentication
forwardagent forwardx11 forwardx11timeout forwardx11trusted gatewayports
globalknownhostsfile gssapiauthentication gssapidelegatecredentials gssapikeyexchange
gssapiclientidentity gssapiserveridentity gssapirenewalforcesrekey gssapitrustdns
gssapikexalgorithms hashknownhosts hostbasedacceptedalgorithms hostbasedauthentication
hostbasedkeytypes hostkeyalgorithms hostkeyalias hostname identitiesonly identityagent
identityfile ignoreunknown ipqos kbdinteractiveauthentication kbdinteractivedevices
kexalgorithms knownhostscommand localcommand localforward loglevel logverbose macs
nohostauthenticationforlocalhost numberofpasswordprompts obscurekeystroketiming
passwordauthentication permitlocalcommand permitremoteopen pkcs11provider port
preferredauthentications proxycommand proxyjump proxyusefdpass pubkeyacceptedalgorithms
pubkeyacceptedkeytypes pubkeyauthentication rekeylimit remotecommand remoteforward requesttty
requiredrsasize revokedhostkeys securitykeyprovider sendenv serveralivecountmax
serveraliveinterval sessiontype setenv stdinnull streamlocalbindmask streamlocalbindunlink
stricthostkeychecking tag tcpkeepalive tunnel tunneldevice updatehostkeys user
userknownhostsfile verifyhostkeydns versionaddendum visualhostkey xauthlocation
afstokenpassing cipher compressionlevel dsaauthentication fallbacktorsh
globalknownhostsfile2 kerberosauthentication kerberostgtpassing protocol rhostsauthentication
rhostsrsaauthentication rsaauthentication skeyauthentication smartcarddevice
tisauthentication useprivilegedport userknownhostsfile2 useroaming usersh
refuseconnection warnweakcrypto usekeychain
`)

var sshOptionSet = func() map[string]bool {
	m := make(map[string]bool, len(sshOptionNames))
	for _, n := range sshOptionNames {
		m[n] = true
	}
	return m
}()

func knownOption(kw string) bool { return sshOptionSet[kw] }
