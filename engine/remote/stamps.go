package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runbook/runbook/internal/statedir"
	"github.com/runbook/runbook/modules/hostfs"
)

// Stamps remembers, per host, the identity of the helper file that this controller last
// verified by hash there: stat's device, inode, size, mode, owner, mtime and ctime, read by
// the start script right before it hashed the file. A later start whose file shows the same
// identity runs without hashing the file again.
//
// Why this is sound: any write to the file, a chmod or chown, or a replacement by another
// file changes its ctime (or its inode), and nobody but root can set a ctime (it follows the
// clock); root could equally change the hashing tool. The store lives on the controller, so a
// host cannot vouch for itself. It is used only where no privilege boundary is crossed (the
// login user runs the helper; with become every start hashes), and an entry is good for
// MaxAge only, after which the file is hashed again.
type Stamps struct {
	// Path is the JSON file; "" keeps the stamps for this process only.
	Path string
	// MaxAge is how long a hash verification stands; 0 means DefaultStampAge.
	MaxAge time.Duration

	now     func() time.Time
	mu      sync.Mutex
	loaded  bool
	entries map[string]stampEntry
	changed map[string]bool // keys to write back (deleted when absent from entries)
}

// DefaultStampAge is how long a hash verification of a helper stands.
const DefaultStampAge = 24 * time.Hour

type stampEntry struct {
	Build    string    `json:"build"`
	Stamp    string    `json:"stamp"`
	Verified time.Time `json:"verified"`
}

type stampFile struct {
	Version int                   `json:"version"`
	Hosts   map[string]stampEntry `json:"hosts"`
}

// stampFormat is the stat(1) format of a stamp, read with -L so that it describes the file
// that the hash reads and exec runs, not a symbolic link to it; stampRE is what a usable
// stamp looks like: nanosecond times (a file system or stat without them gives no stamp, so
// every start hashes).
const stampFormat = "%d:%i:%s:%f:%u:%.9Y:%.9Z"

var stampRE = regexp.MustCompile(`^[0-9]+:[0-9]+:[0-9]+:([0-9a-f]+):[0-9]+:[0-9]+\.[0-9]{9}:[0-9]+\.([0-9]{9})$`)

// validStamp reports whether s is a stamp that identifies a file well enough: the format's
// fields, a regular file, and a ctime with a fractional part (an all-zero one means the file
// system keeps whole seconds, which would let a change in the same second go unnoticed).
func validStamp(s string) bool {
	m := stampRE.FindStringSubmatch(s)
	if m == nil || m[2] == "000000000" {
		return false
	}
	mode, err := strconv.ParseUint(m[1], 16, 32)
	return err == nil && mode&0o170000 == 0o100000
}

// DefaultStampsPath is helper-stamps.json in runbook's state directory (statedir.Dir), or
// "" when there is none: the stamps then last for this run only.
func DefaultStampsPath(getenv func(string) string) string {
	dir, err := statedir.Dir(getenv)
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "helper-stamps.json")
}

// stampKey names a host for the store: login user, address and port, and the host key the
// connection verified.
func stampKey(user, address string, port int, hostKey string) string {
	return fmt.Sprintf("%s@%s:%d %s", user, address, port, hostKey)
}

func (s *Stamps) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

func (s *Stamps) maxAge() time.Duration {
	if s.MaxAge > 0 {
		return s.MaxAge
	}
	return DefaultStampAge
}

// load reads the file once; a missing or unreadable file is an empty store (the cost is a
// hash per host).
func (s *Stamps) load() {
	if s.loaded {
		return
	}
	s.loaded = true
	s.entries = map[string]stampEntry{}
	s.changed = map[string]bool{}
	if s.Path == "" {
		return
	}
	if f, err := readStampFile(s.Path); err == nil {
		s.entries = f.Hosts
	}
}

func readStampFile(path string) (stampFile, error) {
	f := stampFile{Hosts: map[string]stampEntry{}}
	b, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return stampFile{Hosts: map[string]stampEntry{}}, err
	}
	if f.Version != 1 || f.Hosts == nil {
		return stampFile{Hosts: map[string]stampEntry{}}, fmt.Errorf("%s: unknown version %d", path, f.Version)
	}
	return f, nil
}

// lookup returns the build and stamp recorded for key, when they are still good.
func (s *Stamps) lookup(key string) (build, stamp string) {
	if s == nil {
		return "", ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	e, ok := s.entries[key]
	if !ok || !validStamp(e.Stamp) || len(e.Build) != 64 || strings.Trim(e.Build, "0123456789abcdef") != "" {
		return "", ""
	}
	if age := s.clock().Sub(e.Verified); age < 0 || age > s.maxAge() {
		return "", ""
	}
	return e.Build, e.Stamp
}

// record keeps stamp as verified now for key and build; an unusable stamp forgets the key.
func (s *Stamps) record(key, build, stamp string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if validStamp(stamp) {
		s.entries[key] = stampEntry{Build: build, Stamp: stamp, Verified: s.clock().UTC()}
	} else {
		delete(s.entries, key)
	}
	s.changed[key] = true
}

// Save writes what changed in this run into the file, merged with what other runs wrote
// there meanwhile; entries past their age are dropped. It writes a new file and renames it
// into place (mode 0600).
func (s *Stamps) Save() error {
	if s == nil || s.Path == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded || len(s.changed) == 0 {
		return nil
	}
	f, err := readStampFile(s.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		f = stampFile{Hosts: map[string]stampEntry{}}
	}
	f.Version = 1
	for k := range s.changed {
		if e, ok := s.entries[k]; ok {
			f.Hosts[k] = e
		} else {
			delete(f.Hosts, k)
		}
	}
	now := s.clock()
	for k, e := range f.Hosts {
		if now.Sub(e.Verified) > s.maxAge() {
			delete(f.Hosts, k)
		}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return fmt.Errorf("helper stamps: %w", err)
	}
	if err := hostfs.WriteAtomic(s.Path, append(b, '\n'), hostfs.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return fmt.Errorf("helper stamps: %w", err)
	}
	s.changed = map[string]bool{}
	return nil
}

// parseVerified splits a hello's Verified field: how ("hash", "stamp" or "") and the stamp
// read before hashing, if any.
func parseVerified(v string) (how, stamp string) {
	how, stamp, _ = strings.Cut(v, " ")
	return how, stamp
}
