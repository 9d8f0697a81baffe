package host

import (
	"os"
	"strings"
)

// PID1 says what PID 1 is (its command name) and whether the helper shares each of the
// named namespaces ("net", "mnt", "uts", …) with it: whether PID 1 is this host's init. A
// process in namespaces of its own that shares PID 1 with a whole machine (a lab host, a
// chroot) must not take that machine's init for its host's: a timer or a reboot asked of it
// would act on the machine. ours is false when PID 1's namespaces cannot be read (not root).
func PID1(namespaces ...string) (comm string, ours bool) {
	b, err := os.ReadFile("/proc/1/comm")
	if err != nil {
		return "", false
	}
	comm = strings.TrimSpace(string(b))
	for _, ns := range namespaces {
		a, err1 := os.Readlink("/proc/self/ns/" + ns)
		b, err2 := os.Readlink("/proc/1/ns/" + ns)
		if err1 != nil || err2 != nil || a != b {
			return comm, false
		}
	}
	return comm, true
}
