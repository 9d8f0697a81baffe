package transport

import (
	"crypto/ed25519"
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

// knownHostsCache keeps parsed known_hosts files between dials: a run over
// thousands of hosts would otherwise parse the same files once per host.
// An entry is reused only while every file's size and mtime are unchanged.
var knownHostsCache = struct {
	sync.Mutex
	m map[string]cachedDB
}{m: map[string]cachedDB{}}

type cachedDB struct {
	stamp string
	cb    ssh.HostKeyCallback
}

// knownHostsDB returns a callback over the files that exist, nil if none.
func knownHostsDB(paths []string) (ssh.HostKeyCallback, error) {
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
	defer knownHostsCache.Unlock()
	if e, ok := knownHostsCache.m[key]; ok && e.stamp == stamp.String() {
		return e.cb, nil
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	knownHostsCache.m[key] = cachedDB{stamp: stamp.String(), cb: cb}
	return cb, nil
}

// knownHostsMu serialises accept-new appends inside this process; flock
// serialises them against other processes (ssh, another runbook).
var knownHostsMu sync.Mutex

// hostKeyCheck builds the HostKeyCallback and the host key algorithms to
// ask for, so the server offers a key type known_hosts has (otherwise a
// host with an ed25519 entry that also has an RSA key would look changed).
func hostKeyCheck(t Target) (ssh.HostKeyCallback, []string, error) {
	mode, err := normalizeStrict(t.StrictHostKeyChecking)
	if err != nil {
		return nil, nil, err
	}
	if mode == "no" {
		// Explicitly asked for: accept any key, as OpenSSH's
		// StrictHostKeyChecking=no with a throwaway known_hosts would.
		return func(string, net.Addr, ssh.PublicKey) error { return nil }, nil, nil
	}
	cb, err := knownHostsDB(t.KnownHostsFiles)
	if err != nil {
		return nil, nil, err
	}
	algos := knownAlgorithms(cb, t.hostPort())

	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		var kerr *knownhosts.KeyError
		if cb != nil {
			err := cb(hostname, remote, key)
			if err == nil {
				return nil
			}
			var rerr *knownhosts.RevokedError
			if errors.As(err, &rerr) {
				return &HostKeyError{Host: knownhosts.Normalize(hostname), Kind: "revoked",
					KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
					Detail: fmt.Sprintf("%s:%d", rerr.Revoked.Filename, rerr.Revoked.Line)}
			}
			if !errors.As(err, &kerr) {
				return err
			}
			if len(kerr.Want) > 0 {
				return mismatch(hostname, key, kerr.Want)
			}
		}
		// Unknown host.
		if mode == "accept-new" {
			return acceptNew(t.KnownHostsFiles, hostname, remote, key)
		}
		first := "~/.ssh/known_hosts"
		if len(t.KnownHostsFiles) > 0 {
			first = t.KnownHostsFiles[0]
		}
		host, port := splitHostPort(hostname)
		return &HostKeyError{Host: knownhosts.Normalize(hostname), Kind: "unknown",
			KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
			Detail: fmt.Sprintf("StrictHostKeyChecking is yes and no known_hosts file (%s) has it; after verifying the fingerprint: ssh-keyscan -p %s %s >> %s (or set StrictHostKeyChecking=accept-new)",
				joinList(t.KnownHostsFiles), port, host, first)}
	}
	return check, algos, nil
}

func mismatch(hostname string, key ssh.PublicKey, want []knownhosts.KnownKey) error {
	k := want[0]
	host := knownhosts.Normalize(hostname)
	return &HostKeyError{Host: host, Kind: "mismatch", KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
		Detail: fmt.Sprintf("%s:%d expects %s %s; if the host was reinstalled, verify the new key and remove the old entry: ssh-keygen -R '%s' -f %s",
			k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key), host, k.Filename)}
}

// knownAlgorithms returns the host key algorithms of hostPort's known_hosts
// entries, in x/crypto's preference order; nil (x/crypto's default) when
// there are none.
func knownAlgorithms(cb ssh.HostKeyCallback, hostPort string) []string {
	if cb == nil {
		return nil
	}
	// A throwaway key can never be known: the KeyError lists the known ones.
	err := cb(hostPort, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, probeKey)
	var kerr *knownhosts.KeyError
	if !errors.As(err, &kerr) || len(kerr.Want) == 0 {
		return nil
	}
	have := map[string]bool{}
	for _, k := range kerr.Want {
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
	// Re-check under the lock.
	if cb, err := knownhosts.New(existing(files)...); err == nil {
		err := cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		var kerr *knownhosts.KeyError
		if errors.As(err, &kerr) && len(kerr.Want) > 0 {
			return mismatch(hostname, key, kerr.Want)
		} else if !errors.As(err, &kerr) {
			return err
		}
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
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
			// Unreadable for another reason: let knownhosts.New report it.
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

// probeKey is a fixed key nobody has in known_hosts, used to list the keys
// known for a host.
var probeKey = func() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		panic(err)
	}
	return k
}()
