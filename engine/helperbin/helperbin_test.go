package helperbin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGetFromDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, Name("arm64")), []byte("helper"), 0o755)
	t.Setenv(EnvDir, dir)
	h, err := Get("arm64")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("helper"))
	data, err := h.Bytes()
	if err != nil || h.SHA256 != hex.EncodeToString(sum[:]) || string(data) != "helper" || h.Size != 6 {
		t.Errorf("helper = %q %s %d %v", data, h.SHA256, h.Size, err)
	}
	if _, err := Get("riscv64"); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), EnvDir) {
		t.Errorf("err = %v", err)
	}
}

func TestArch(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64"} {
		if got, err := Arch(in); err != nil || got != want {
			t.Errorf("Arch(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := Arch("ppc64le"); err == nil {
		t.Error("ppc64le accepted")
	}
}

func TestVerifiedLoad(t *testing.T) {
	data := []byte("helper bytes")
	sum := sha256.Sum256(data)
	load := func() ([]byte, error) { return data, nil }
	if got, err := verified(load, hex.EncodeToString(sum[:]), "amd64")(); err != nil || string(got) != string(data) {
		t.Errorf("matching hash: %q %v", got, err)
	}
	if _, err := verified(load, strings.Repeat("0", 64), "amd64")(); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("stale sidecar: err = %v", err)
	}
}
