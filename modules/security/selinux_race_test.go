//go:build linux

package security

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sys/unix"
)

// TestSELinuxConfigSwapped runs the selinux module on a config file in a directory of a
// local user's (uid 65534), who keeps swapping two directories under the config's path:
// their own, holding their config, and one of root's, holding root's (mode 0600). The
// module reads, keeps the mode and owner of, and replaces one and the same file: root's
// config never gets the user's owner, mode or content, nor the user's root's.
func TestSELinuxConfigSwapped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("playing root and another user needs root")
	}
	for _, tool := range []string{"setpriv", "perl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, root, kernNone)
	type side struct {
		name    string // its name in home at the start
		uid     int
		mode    os.FileMode
		marker  string
		dir     int // held open, wherever the user moves it
		foreign string
	}
	sides := []*side{
		{name: "se", uid: 65534, mode: 0o644, marker: "# the user's\n", foreign: "# root's\n"},
		{name: "se.b", uid: 0, mode: 0o600, marker: "# root's\n", foreign: "# the user's\n"},
	}
	home := root + "/home"
	for _, err := range []error{os.Chmod(filepath.Dir(root), 0o755), os.Chmod(root, 0o755), os.Mkdir(home, 0o755), os.Chown(home, 65534, 65534)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, sd := range sides {
		p := filepath.Join(home, sd.name)
		for _, err := range []error{
			os.Mkdir(p, 0o755), os.Chown(p, sd.uid, sd.uid),
			os.WriteFile(p+"/config", []byte("SELINUX=enforcing\n"+sd.marker), sd.mode),
			os.Chmod(p+"/config", sd.mode), os.Chown(p+"/config", sd.uid, sd.uid),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		if sd.dir, err = unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(sd.dir)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "perl", "-e",
		`chdir shift or die; while (1) { rename "se", "se.a"; rename "se.b", "se"; rename "se", "se.b"; rename "se.a", "se" }`, home)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	time.Sleep(50 * time.Millisecond)

	states := []string{"disabled", "permissive"}
	for i := 0; i < 300; i++ {
		_, _ = moduletest.Run(t, SELinux{root: host.Root(root)}, map[string]cty.Value{"state": s(states[i%2]), "config": s("/home/se/config")}, true)
		for _, sd := range sides {
			var st unix.Stat_t
			if err := unix.Fstatat(sd.dir, "config", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				t.Fatalf("run %d: %v", i+1, err)
			}
			b, err := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d/config", sd.dir))
			if err != nil {
				t.Fatalf("run %d: %v", i+1, err)
			}
			if int(st.Uid) != sd.uid || os.FileMode(st.Mode&0o7777) != sd.mode || !strings.Contains(string(b), sd.marker) || strings.Contains(string(b), sd.foreign) {
				t.Fatalf("run %d: the config first named %s is %04o %d with %q", i+1, sd.name, st.Mode&0o7777, st.Uid, b)
			}
			if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
				t.Fatalf("run %d: the config is no longer a file", i+1)
			}
		}
	}
}
