//go:build linux

package facts

import (
	"bytes"

	"golang.org/x/sys/unix"
)

func uname() (release, machine string) {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "", ""
	}
	return cstr(u.Release[:]), cstr(u.Machine[:])
}

// drvinfo is what the kernel's ETHTOOL_GDRVINFO reports for an interface.
type drvinfo struct {
	driver, version, firmware, busInfo string
}

// ethtool asks the kernel's drivers about interfaces, as `ethtool -i` does, over one
// socket. It works on the running system only.
type ethtool struct{ fd int }

func openEthtool() *ethtool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		// No IPv4 in this kernel: any socket family takes the ioctl.
		fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil
		}
	}
	return &ethtool{fd: fd}
}

func (e *ethtool) close() {
	if e != nil {
		unix.Close(e.fd)
	}
}

// info returns the driver's answer, or false when the interface does not give one.
func (e *ethtool) info(name string) (drvinfo, bool) {
	if e == nil {
		return drvinfo{}, false
	}
	d, err := unix.IoctlGetEthtoolDrvinfo(e.fd, name)
	if err != nil {
		return drvinfo{}, false
	}
	return decodeDrvinfo(d), true
}

func decodeDrvinfo(d *unix.EthtoolDrvinfo) drvinfo {
	return drvinfo{
		driver:   cstr(d.Driver[:]),
		version:  cstr(d.Version[:]),
		firmware: cstr(d.Fw_version[:]),
		busInfo:  cstr(d.Bus_info[:]),
	}
}

// cstr reads a NUL-terminated string out of a fixed-size kernel buffer.
func cstr[T byte | int8](b []T) string {
	buf := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		buf = append(buf, byte(c))
	}
	return string(bytes.TrimSpace(buf))
}
