package transport

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHostsCache keeps read known_hosts files between dials: a run over thousands of hosts
// would otherwise read the same files once per host. An entry is reused only while every
// file's size and mtime are unchanged.
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
			fmt.Fprintf(&stamp, "%d/%d;", st.Size(), st.ModTime().UnixNano())
		}
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

// warnedSets holds, per Dialer, the warnings already given (outside the Dialer, so that
// Dialers stay plain values).
var warnedSets sync.Map // *Dialer → *warnedSet

type warnedSet struct {
	sync.Mutex
	given map[string]bool
}

// warnOnce gives msg to d.Warn (nil: standard error) unless a warning with key was given
// before by this Dialer. The transport's warnings are about the controller's own files,
// such as a known_hosts line that cannot be read, so each is given once however many hosts
// the file serves.
func (d *Dialer) warnOnce(key, msg string) {
	v, _ := warnedSets.LoadOrStore(d, &warnedSet{given: map[string]bool{}})
	w := v.(*warnedSet)
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
func hostKeyCheck(t Target, warn func(key, msg string)) (ssh.HostKeyCallback, []string, error) {
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
	algos := knownAlgorithms(db, t.hostPort())

	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
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
			return acceptNew(t.KnownHostsFiles, hostname, remote, key)
		}
		first := "~/.ssh/known_hosts"
		if len(t.KnownHostsFiles) > 0 {
			first = t.KnownHostsFiles[0]
		}
		host, port := splitHostPort(hostname)
		detail := fmt.Sprintf("StrictHostKeyChecking is yes and no known_hosts file (%s) has it; after verifying the fingerprint: ssh-keyscan -p %s %s >> %s (or set StrictHostKeyChecking=accept-new)",
			joinList(t.KnownHostsFiles), port, host, first)
		if len(maybe) > 0 {
			detail = fmt.Sprintf("no known_hosts file (%s) has it, but %s cannot be read and may be its entry, so it is not accepted as new; fix or remove that line, or after verifying the fingerprint: ssh-keyscan -p %s %s >> %s",
				joinList(t.KnownHostsFiles), joinList(maybe), port, host, first)
		}
		return &HostKeyError{Host: displayName(hostname), Kind: "unknown",
			KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key), Detail: detail}
	}
	return check, algos, nil
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
		Detail: fmt.Sprintf("%s:%d expects %s %s; if the host was reinstalled, verify the new key and remove the old entry: ssh-keygen -R '%s' -f %s",
			k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key), host, k.Filename)}
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

// acceptNew records an unknown host's key in the first known_hosts file,
// under an exclusive flock, unless another process recorded a key for the
// host meanwhile (then that entry is what we verify against).
func acceptNew(files []string, hostname string, remote net.Addr, key ssh.PublicKey) error {
	if len(files) == 0 {
		return errors.New("StrictHostKeyChecking=accept-new but no known_hosts file to record the key in")
	}
	path := files[0]
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("accept-new: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("accept-new: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("accept-new: lock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file unlocks too
	// Re-check under the lock: another process may have recorded the host meanwhile.
	db, err := readKnownHosts(existing(files))
	if err != nil {
		return fmt.Errorf("accept-new: %w", err)
	}
	if err := verdict(db.callback(), hostname, remote, key); !errors.Is(err, errUnknownHost) {
		return err
	}
	if u := db.unattributed(); len(u) > 0 {
		return fmt.Errorf("accept-new: %s cannot be read and may be the entry of %s; not recording its key", joinList(u), displayName(hostname))
	}
	// Under the lower-case name OpenSSH looks the host up by.
	line := displayName(hostname) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + "\n"
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		// Make sure we start on a new line.
		buf := make([]byte, 1)
		if _, err := f.ReadAt(buf, st.Size()-1); err == nil && buf[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("accept-new: write %s: %w", path, err)
	}
	return nil
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
