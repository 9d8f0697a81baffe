//go:build linux

package facts

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestDecodeDrvinfo reads the kernel's fixed-size, NUL-terminated fields the way the
// ETHTOOL_GDRVINFO answer fills them.
func TestDecodeDrvinfo(t *testing.T) {
	var d unix.EthtoolDrvinfo
	copy(d.Driver[:], "i40e")
	copy(d.Version[:], "2.22.18")
	copy(d.Fw_version[:], "9.20 0x8000d95e 22.0.9")
	copy(d.Bus_info[:], "0000:3b:00.0\x00garbage")
	copy(d.Erom_version[:], "x")
	got := decodeDrvinfo(&d)
	want := drvinfo{driver: "i40e", version: "2.22.18", firmware: "9.20 0x8000d95e 22.0.9", busInfo: "0000:3b:00.0"}
	if got != want {
		t.Errorf("decodeDrvinfo = %+v, want %+v", got, want)
	}
	// A field filled to the last byte has no NUL: all of it is the value.
	var full [4]byte
	copy(full[:], "abcd")
	if s := cstr(full[:]); s != "abcd" {
		t.Errorf("cstr without NUL = %q", s)
	}
}

// TestEthtoolUnknownInterface: the ioctl's failure is "no answer", not a crash.
func TestEthtoolUnknownInterface(t *testing.T) {
	e := openEthtool()
	if e == nil {
		t.Skip("no socket for ethtool")
	}
	defer e.close()
	if _, ok := e.info("nosuchnic0"); ok {
		t.Error("an interface that does not exist answered")
	}
	var none *ethtool
	if _, ok := none.info("eth0"); ok {
		t.Error("a nil ethtool answered")
	}
}
