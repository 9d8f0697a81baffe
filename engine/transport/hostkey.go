package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/runbook/runbook/internal/sh"
)

// knownHostsCache keeps read known_hosts files between dials: a run over thousands of hosts
// would otherwise read the same files once per host. An entry is reused only while every
// file's size, mtime, device and inode are unchanged (a file replaced by another of the same
// size within the clock's resolution is seen by its inode).
var knownHostsCache = struct {
	sync.Mutex
	m map[string]cachedDB
}{m: map[string]cachedDB{}}

type cachedDB struct {
	stamp string
	db    *knownHostsDB
}

// loadKnownHosts returns the files that exist, read; nil if there are none. Each line that
// cannot be read is passed to warn (see Dialer.Warn) and left out.
func loadKnownHosts(paths []string, warn func(key, msg string)) (*knownHostsDB, error) {
	files := existing(paths)
	if len(files) == 0 {
		return nil, nil
	}
	key := strings.Join(files, "\x00")
	var stamp strings.Builder
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintf(&stamp, "%d/%d", st.Size(), st.ModTime().UnixNano())
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				fmt.Fprintf(&stamp, "/%d/%d", sys.Dev, sys.Ino)
			}
		}
		stamp.WriteByte(';')
	}
	knownHostsCache.Lock()
	e, ok := knownHostsCache.m[key]
	if !ok || e.stamp != stamp.String() {
		db, err := readKnownHosts(files)
		if err != nil {
			knownHostsCache.Unlock()
			return nil, err
		}
		e = cachedDB{stamp: stamp.String(), db: db}
		knownHostsCache.m[key] = e
	}
	knownHostsCache.Unlock()
	for _, b := range e.db.broken {
		warn(b.where()+"\x00"+b.reason, fmt.Sprintf("known_hosts %s skipped: %s", b.where(), b.reason))
	}
	return e.db, nil
}

// warnedSet is the warnings a Dialer has given, by key.
type warnedSet struct {
	sync.Mutex
	given map[string]bool
}

// warnOnce gives msg to d.Warn (nil: standard error) unless a warning with key was given
// before by this Dialer. The transport's warnings are about the controller's own files,
// such as a known_hosts line that cannot be read, so each is given once however many hosts
// the file serves.
func (d *Dialer) warnOnce(key, msg string) {
	w := &d.state().warned
	w.Lock()
	defer w.Unlock()
	if w.given[key] {
		return
	}
	w.given[key] = true
	if d.Warn != nil {
		d.Warn(msg)
	} else {
		fmt.Fprintln(os.Stderr, "warning: "+msg)
	}
}

// knownHostsMu serialises accept-new appends inside this process; flock
// serialises them against other processes (ssh, another runbook).
var knownHostsMu sync.Mutex

// hostKeyCheck builds the HostKeyCallback and the host key algorithms to
// ask for, so the server offers a key type known_hosts has (otherwise a
// host with an ed25519 entry that also has an RSA key would look changed).
//
// recorded, if not nil, is called when accept-new has just recorded the key of a host
// known_hosts knew nothing about: that key was not verified by anything.
func hostKeyCheck(t Target, warn func(key, msg string), recorded func()) (ssh.HostKeyCallback, []string, error) {
	mode, err := normalizeStrict(t.StrictHostKeyChecking)
	if err != nil {
		return nil, nil, err
	}
	if mode == "no" {
		// Explicitly asked for: accept any key, as OpenSSH's
		// StrictHostKeyChecking=no with a throwaway known_hosts would.
		return func(string, net.Addr, ssh.PublicKey) error { return nil }, nil, nil
	}
	db, err := loadKnownHosts(t.KnownHostsFiles, warn)
	if err != nil {
		return nil, nil, err
	}
	var cb ssh.HostKeyCallback
	if db != nil {
		cb = db.callback()
	}
	// HostKeyAlias: known_hosts is searched for (and accept-new records) the alias, as
	// written, instead of the address and port.
	lookup := t.hostPort()
	if t.HostKeyAlias != "" {
		if p := hostProblem(t.HostKeyAlias); p != "" {
			return nil, nil, &NameError{What: "HostKeyAlias", Value: t.HostKeyAlias, Problem: p}
		}
		lookup = joinHostPort(t.HostKeyAlias, 22)
	}
	algos := knownAlgorithms(db, lookup)

	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if t.HostKeyAlias != "" {
			hostname = lookup
		}
		err := verdict(cb, hostname, remote, key)
		if !errors.Is(err, errUnknownHost) {
			return err
		}
		// Unknown host. A line that cannot be read may be its entry: never record a key
		// over it.
		var maybe []string
		if db != nil {
			maybe = db.unattributed()
		}
		if mode == "accept-new" && len(maybe) == 0 {
			wrote, err := acceptNew(t.KnownHostsFiles, hostname, remote, key)
			if wrote && err == nil && recorded != nil {
				recorded()
			}
			return err
		}
		first := "~/.ssh/known_hosts"
		if len(t.KnownHostsFiles) > 0 {
			first = t.KnownHostsFiles[0]
		}
		keyscan := keyscanCommand(hostname, first)
		detail := fmt.Sprintf("StrictHostKeyChecking is yes and no known_hosts file (%s) has it; after verifying the fingerprint: %s (or set StrictHostKeyChecking=accept-new)",
			joinList(t.KnownHostsFiles), keyscan)
		if len(maybe) > 0 {
			detail = fmt.Sprintf("no known_hosts file (%s) has it, but %s cannot be read and may be its entry, so it is not accepted as new; fix or remove that line, or after verifying the fingerprint: %s",
				joinList(t.KnownHostsFiles), joinList(maybe), keyscan)
		}
		return &HostKeyError{Host: displayName(hostname), Kind: "unknown",
			KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key), Detail: detail}
	}
	return check, algos, nil
}

// keyscanCommand is the command that records hostname's keys in file, quoted for a shell:
// the host and file may hold anything a shell would read (a host is checked before it is
// dialled, but a suggestion must be safe to paste whatever it names). OpenSSH records a host
// in lower case, so the suggestion asks for it so.
func keyscanCommand(hostname, file string) string {
	host, port := splitHostPort(hostname)
	return fmt.Sprintf("ssh-keyscan -p %s %s >> %s", sh.Quote(port), sh.Quote(canonicalHost(host)), sh.Quote(file))
}

// displayName is the name known_hosts knows hostname ("host:port") by, for messages.
func displayName(hostname string) string {
	if name, ok := lookupNameOf(hostname); ok {
		return name
	}
	return hostname
}

// errUnknownHost is verdict's answer for a host that known_hosts says nothing about.
var errUnknownHost = errors.New("unknown host")

// verdict verifies key with a known_hosts callback (nil: no files): nil if an entry has it,
// errUnknownHost if no entry is about the host, else the refusal (a *HostKeyError for a
// revoked or changed key, or for a host whose own entry cannot be read).
func verdict(cb ssh.HostKeyCallback, hostname string, remote net.Addr, key ssh.PublicKey) error {
	if cb == nil {
		return errUnknownHost
	}
	err := cb(hostname, remote, key)
	var (
		rerr *knownhosts.RevokedError
		uerr *UnreadableEntryError
		kerr *knownhosts.KeyError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rerr):
		return &HostKeyError{Host: displayName(hostname), Kind: "revoked",
			KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
			Detail: fmt.Sprintf("%s:%d", rerr.Revoked.Filename, rerr.Revoked.Line)}
	case errors.As(err, &uerr):
		return &HostKeyError{Host: displayName(hostname), Kind: "unreadable",
			KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key), Detail: uerr.Error()}
	case errors.As(err, &kerr) && len(kerr.Want) > 0:
		return mismatch(hostname, key, kerr.Want)
	case errors.As(err, &kerr):
		return errUnknownHost
	}
	return err
}

func mismatch(hostname string, key ssh.PublicKey, want []knownhosts.KnownKey) error {
	k := want[0]
	host := displayName(hostname)
	return &HostKeyError{Host: host, Kind: "mismatch", KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
		Detail: fmt.Sprintf("%s:%d expects %s %s; if the host was reinstalled, verify the new key and remove the old entry: ssh-keygen -R %s -f %s",
			k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key), sh.Quote(host), sh.Quote(k.Filename))}
}

// knownAlgorithms returns the host key algorithms of hostPort's readable known_hosts
// entries, in x/crypto's preference order; nil (x/crypto's default) when there are none.
func knownAlgorithms(db *knownHostsDB, hostPort string) []string {
	if db == nil {
		return nil
	}
	name, ok := lookupNameOf(hostPort)
	if !ok {
		return nil
	}
	have := map[string]bool{}
	for _, k := range db.keysFor(name) {
		switch k.Key.Type() {
		case ssh.KeyAlgoRSA:
			have[ssh.KeyAlgoRSASHA512], have[ssh.KeyAlgoRSASHA256], have[ssh.KeyAlgoRSA] = true, true, true
		default:
			have[k.Key.Type()] = true
		}
	}
	var out []string
	for _, a := range preferredHostKeyAlgos {
		if have[a] {
			out = append(out, a)
		}
	}
	return out
}

var preferredHostKeyAlgos = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA,
}

// acceptNew records an unknown host's key in the first known_hosts file (wrote is then
// true),
// under an exclusive flock, unless another process recorded a key for the
// host meanwhile (then that entry is what we verify against). The line is made,
// and checked, before any file is touched.
func acceptNew(files []string, hostname string, remote net.Addr, key ssh.PublicKey) (wrote bool, _ error) {
	if len(files) == 0 {
		return false, errors.New("StrictHostKeyChecking=accept-new but no known_hosts file to record the key in")
	}
	line, err := knownHostsLine(hostname, key)
	if err != nil {
		return false, fmt.Errorf("accept-new: %w", err)
	}
	path := files[0]
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("accept-new: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return false, fmt.Errorf("accept-new: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return false, fmt.Errorf("accept-new: lock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file unlocks too
	// Re-check under the lock: another process may have recorded the host meanwhile.
	db, err := readKnownHosts(existing(files))
	if err != nil {
		return false, fmt.Errorf("accept-new: %w", err)
	}
	if err := verdict(db.callback(), hostname, remote, key); !errors.Is(err, errUnknownHost) {
		return false, err
	}
	if u := db.unattributed(); len(u) > 0 {
		return false, fmt.Errorf("accept-new: %s cannot be read and may be the entry of %s; not recording its key", joinList(u), displayName(hostname))
	}
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		// Make sure we start on a new line.
		buf := make([]byte, 1)
		if _, err := f.ReadAt(buf, st.Size()-1); err == nil && buf[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		return false, fmt.Errorf("accept-new: write %s: %w", path, err)
	}
	return true, nil
}

// knownHostsLine is the known_hosts line that records key for hostname ("host:port"), under
// the lower-case name OpenSSH looks the host up by. Before it is written, the line is read
// back with the reader's own parser: it must be one line, of one plain pattern (no list, no
// wildcard, no negation, no marker) that is that very name, and the key. So a name that
// slipped past every check still cannot write a pattern or a second line.
func knownHostsLine(hostname string, key ssh.PublicKey) (string, error) {
	name, ok := lookupNameOf(hostname)
	if !ok {
		return "", fmt.Errorf("%q is not host:port", hostname)
	}
	line := name + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + "\n"
	db := &knownHostsDB{revoked: map[string]knownhosts.KnownKey{}}
	db.add("new line", []byte(line))
	refuse := func(why string) (string, error) {
		return "", fmt.Errorf("not recording the key of %q: the known_hosts line would %s", name, why)
	}
	switch {
	case strings.ContainsAny(name, "\r\n"):
		return refuse("be more than one line")
	case len(db.broken) > 0 || len(db.revoked) > 0 || len(db.entries) != 1:
		return refuse("not read back as one entry")
	case db.entries[0].ca:
		return refuse("be a @cert-authority line")
	case !bytes.Equal(db.entries[0].key.Key.Marshal(), key.Marshal()):
		return refuse("not hold the key")
	}
	ps, ok := db.entries[0].hosts.(patternList)
	if p, plain := ps.plain(); !ok || !plain || p != name {
		return refuse("not be read back as the one plain name " + strconv.Quote(name))
	}
	return line, nil
}

func existing(files []string) []string {
	var out []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			out = append(out, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			// Unreadable for another reason: let readKnownHosts report it.
			out = append(out, f)
		}
	}
	return out
}

func splitHostPort(hp string) (string, string) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return hp, "22"
	}
	return h, p
}

func joinList(s []string) string {
	if len(s) == 0 {
		return "none configured"
	}
	out := s[0]
	for _, x := range s[1:] {
		out += ", " + x
	}
	return out
}
