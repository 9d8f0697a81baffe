package modules

import (
	"io"
	"os"
	"strings"
)

// BootIDPath is where Linux gives the current boot's id; a variable for tests.
var BootIDPath = "/proc/sys/kernel/random/boot_id"

// BootID is this host's boot id, a UUID that changes at every boot, or "" when the host has
// none (not Linux) or what it holds is not a UUID.
func BootID() string {
	f, err := os.Open(BootIDPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(string(b))
	if !isUUID(id) {
		return ""
	}
	return id
}

// isUUID says s is 36 characters of lower-case hex digits with dashes where a UUID has them.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
