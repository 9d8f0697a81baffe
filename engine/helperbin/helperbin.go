// Package helperbin provides the helper binaries the controller pushes to hosts. `make build`
// compiles them (static, stripped) into bin/ here, and they are embedded into the runbook
// binary; a plain `go build` embeds none, and then RUNBOOK_HELPER_DIR must name a directory
// that holds them.
package helperbin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

//go:embed all:bin
var embedded embed.FS

// EnvDir names a directory of helper binaries that overrides the embedded ones.
const EnvDir = "RUNBOOK_HELPER_DIR"

// Name is the file name of the helper for a Linux architecture (GOARCH spelling).
func Name(arch string) string { return "runbook-helper-linux-" + arch }

// Helper is one helper binary with its content address.
type Helper struct {
	Arch   string
	Data   []byte
	SHA256 string
}

var (
	mu    sync.Mutex
	cache = map[string]*Helper{}
)

// ErrMissing is returned when no helper exists for an architecture.
var ErrMissing = errors.New("no helper binary")

// Get returns the helper for arch ("amd64", "arm64"): from $RUNBOOK_HELPER_DIR when set, else
// the embedded one. The result is cached: hashing a few megabytes once per run is enough.
func Get(arch string) (*Helper, error) {
	mu.Lock()
	defer mu.Unlock()
	if h := cache[arch]; h != nil {
		return h, nil
	}
	var data []byte
	var err error
	if dir := os.Getenv(EnvDir); dir != "" {
		data, err = os.ReadFile(filepath.Join(dir, Name(arch)))
		if err != nil {
			return nil, fmt.Errorf("%w for linux/%s in %s=%s: %v", ErrMissing, arch, EnvDir, dir, err)
		}
	} else {
		data, err = fs.ReadFile(embedded, "bin/"+Name(arch))
		if err != nil {
			return nil, fmt.Errorf("%w for linux/%s: this runbook was built without embedded helpers; build it with `make build`, or set %s to a directory holding %s (CGO_ENABLED=0 GOOS=linux GOARCH=%s go build -trimpath -ldflags '-s -w' -o DIR/%s ./cmd/runbook-helper)",
				ErrMissing, arch, EnvDir, Name(arch), arch, Name(arch))
		}
	}
	sum := sha256.Sum256(data)
	h := &Helper{Arch: arch, Data: data, SHA256: hex.EncodeToString(sum[:])}
	cache[arch] = h
	return h, nil
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
