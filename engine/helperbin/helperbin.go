// Package helperbin provides the helper binaries the controller pushes to hosts. `make build`
// compiles them (static, stripped) into bin/ here, and they are embedded into the runbook
// binary; a plain `go build` embeds none, and then RUNBOOK_HELPER_DIR must name a directory
// that holds them.
package helperbin

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

//go:embed all:bin
var embedded embed.FS

// EnvDir names a directory of helper binaries that overrides the embedded ones.
const EnvDir = "RUNBOOK_HELPER_DIR"

// Name is the file name of the helper for a Linux architecture (GOARCH spelling).
func Name(arch string) string { return "runbook-helper-linux-" + arch }

// Helper is one helper binary with its content address. Its bytes are read only when a
// host needs it pushed.
type Helper struct {
	Arch   string
	SHA256 string
	Size   int64

	load func() ([]byte, error)
	gz   func() ([]byte, error)
}

// Bytes returns the binary.
func (h *Helper) Bytes() ([]byte, error) { return h.load() }

// Gzip returns the binary compressed with gzip, for a host that can inflate it: the file
// `make helpers` writes beside an embedded helper (NAME.gz, checked against the third field
// of NAME.sha256), else the binary compressed once, now, at gzip's fastest level. The host
// checks the sha256 of what it inflates, never of what it received.
func (h *Helper) Gzip() ([]byte, error) {
	if h.gz == nil {
		return nil, errors.New("no compressed helper")
	}
	return h.gz()
}

// compressed returns a function that compresses load's bytes once.
func compressed(load func() ([]byte, error)) func() ([]byte, error) {
	return sync.OnceValues(func() ([]byte, error) {
		data, err := load()
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	})
}

// embeddedGzip returns the embedded NAME.gz when its sha256 is gzSum, else a function that
// compresses the helper.
func embeddedGzip(name, gzSum string, load func() ([]byte, error)) func() ([]byte, error) {
	if gzSum == "" {
		return compressed(load)
	}
	return sync.OnceValues(func() ([]byte, error) {
		data, err := fs.ReadFile(embedded, name+".gz")
		if sum := sha256.Sum256(data); err != nil || hex.EncodeToString(sum[:]) != gzSum {
			return compressed(load)()
		}
		return data, nil
	})
}

var (
	mu    sync.Mutex
	cache = map[string]*Helper{}
)

// ErrMissing is returned when no helper exists for an architecture.
var ErrMissing = errors.New("no helper binary")

// Get returns the helper for arch ("amd64", "arm64"): from $RUNBOOK_HELPER_DIR when set, else
// the embedded one. An embedded helper's hash comes from the NAME.sha256 file `make helpers`
// writes beside it (checked against its size), so a run does not hash megabytes it will
// usually not send; a helper from the directory is hashed once per run.
func Get(arch string) (*Helper, error) {
	mu.Lock()
	defer mu.Unlock()
	if h := cache[arch]; h != nil {
		return h, nil
	}
	var h *Helper
	if dir := os.Getenv(EnvDir); dir != "" {
		data, err := os.ReadFile(filepath.Join(dir, Name(arch)))
		if err != nil {
			return nil, fmt.Errorf("%w for linux/%s in %s=%s: %v", ErrMissing, arch, EnvDir, dir, err)
		}
		h = fromData(arch, data)
	} else {
		name := "bin/" + Name(arch)
		fi, err := fs.Stat(embedded, name)
		if err != nil {
			return nil, fmt.Errorf("%w for linux/%s: this runbook was built without embedded helpers; build it with `make build`, or set %s to a directory holding %s (CGO_ENABLED=0 GOOS=linux GOARCH=%s go build -trimpath -ldflags '-s -w' -o DIR/%s ./cmd/runbook-helper)",
				ErrMissing, arch, EnvDir, Name(arch), arch, Name(arch))
		}
		// Read once however many hosts need it (embed copies on every read).
		load := sync.OnceValues(func() ([]byte, error) { return fs.ReadFile(embedded, name) })
		if sum, gzSum, ok := sidecar(name+".sha256", fi.Size()); ok {
			h = &Helper{Arch: arch, SHA256: sum, Size: fi.Size(), load: verified(load, sum, arch)}
			h.gz = embeddedGzip(name, gzSum, h.load)
		} else {
			data, err := load()
			if err != nil {
				return nil, err
			}
			h = fromData(arch, data)
		}
	}
	cache[arch] = h
	return h, nil
}

// verified checks, the one time the binary is read (to push it), that it has the hash its
// sidecar gave: a helper rebuilt at the same size without `make helpers` would otherwise be
// pushed under a name that is not its hash, and every host would refuse it after upload.
func verified(load func() ([]byte, error), sum, arch string) func() ([]byte, error) {
	return sync.OnceValues(func() ([]byte, error) {
		data, err := load()
		if err != nil {
			return nil, err
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
			return nil, fmt.Errorf("the embedded helper for linux/%s does not match its .sha256 file (it was rebuilt without `make helpers`): run `make build`", arch)
		}
		return data, nil
	})
}

func fromData(arch string, data []byte) *Helper {
	sum := sha256.Sum256(data)
	h := &Helper{Arch: arch, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)),
		load: func() ([]byte, error) { return data, nil }}
	h.gz = compressed(h.load)
	return h
}

// sidecar reads an embedded "SHA256 SIZE [GZSHA256]" file: the helper's hash and size, and
// the hash of its NAME.gz when `make helpers` wrote one. ok is false when it is missing,
// malformed or names another size (a helper rebuilt without it).
func sidecar(name string, size int64) (sum, gzSum string, ok bool) {
	b, err := fs.ReadFile(embedded, name)
	if err != nil {
		return "", "", false
	}
	hash := func(s string) bool { return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == "" }
	f := strings.Fields(string(b))
	if (len(f) != 2 && len(f) != 3) || !hash(f[0]) || f[1] != strconv.FormatInt(size, 10) {
		return "", "", false
	}
	if len(f) == 3 && hash(f[2]) {
		gzSum = f[2]
	}
	return f[0], gzSum, true
}

// Arch maps `uname -m` output to a GOARCH name.
func Arch(unameM string) (string, error) {
	switch unameM {
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	}
	return "", fmt.Errorf("no helper for machine type %q: runbook supports x86_64 and aarch64 hosts", unameM)
}
