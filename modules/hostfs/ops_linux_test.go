//go:build linux

package hostfs

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestChmodDoesNotOpen changes a mode through a descriptor that never opens what is at the
// name: a device or FIFO swapped in is not opened as root (inotify sees no open), and a
// socket, which cannot be opened at all, gets its mode too.
func TestChmodDoesNotOpen(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, p string)
		wantErr string
	}{
		{name: "regular file", make: func(t *testing.T, p string) { must(t, os.WriteFile(p, nil, 0o600)) }},
		{name: "directory", make: func(t *testing.T, p string) { must(t, os.Mkdir(p, 0o700)) }},
		{name: "FIFO", make: func(t *testing.T, p string) { must(t, unix.Mkfifo(p, 0o600)) }},
		{name: "socket", make: func(t *testing.T, p string) {
			l, err := net.Listen("unix", p)
			must(t, err)
			t.Cleanup(func() { l.Close() })
		}},
		{name: "link", make: func(t *testing.T, p string) { must(t, os.Symlink("/etc/hostname", p)) }, wantErr: "is a symbolic link, which is not followed"},
	}
	for _, tt := range tests {
		for _, fallback := range []bool{false, true} {
			name := tt.name
			if fallback {
				name += ", through /proc/self/fd"
			}
			t.Run(name, func(t *testing.T) {
				if fallback {
					chmodFD = func(fd int, mode fs.FileMode) error { return chmodProc(fd, unixMode(mode)) }
					t.Cleanup(func() { chmodFD = chmodAt })
				}
				p := filepath.Join(t.TempDir(), "x")
				tt.make(t, p)
				in, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
				must(t, err)
				defer unix.Close(in)
				if tt.wantErr == "" {
					_, err = unix.InotifyAddWatch(in, p, unix.IN_OPEN)
					must(t, err)
				}
				r, err := Resolve(p, NoFollow)
				must(t, err)
				defer r.Close()
				fi, err := r.Lstat()
				must(t, err)
				err = r.Chmod(fi, 0o640|fs.ModeSetgid)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want %q", err, tt.wantErr)
					}
					return
				}
				must(t, err)
				after, err := os.Lstat(p)
				must(t, err)
				if after.Mode()&(fs.ModePerm|fs.ModeSetgid) != 0o640|fs.ModeSetgid {
					t.Errorf("mode %v", after.Mode())
				}
				if n, _ := unix.Read(in, make([]byte, 4096)); n > 0 {
					t.Errorf("%s was opened", p)
				}
			})
		}
	}
}
