package testenv

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// cpioRecord is one entry read back from a newc archive.
type cpioRecord struct {
	name  string
	mode  uint32
	nlink uint32
	rdev  [2]uint32
	data  string
}

// readCpio parses concatenated newc archives the way the kernel does: each
// header 4-byte aligned, zero padding between archives skipped.
func readCpio(t *testing.T, b []byte) (archives [][]cpioRecord) {
	t.Helper()
	var cur []cpioRecord
	off := 0
	for off < len(b) {
		if b[off] == 0 {
			if off%4 != 0 {
				t.Fatalf("padding at unaligned offset %d", off)
			}
			off += 4
			continue
		}
		if off%4 != 0 {
			t.Fatalf("header at unaligned offset %d", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatalf("header field %d at %d: %v", i, off, err)
			}
			return uint32(v)
		}
		size, namesize := int(field(6)), int(field(11))
		name := string(b[off+110 : off+110+namesize-1])
		if b[off+110+namesize-1] != 0 {
			t.Fatalf("name of %q not NUL-terminated", name)
		}
		dataOff := (off + 110 + namesize + 3) &^ 3
		rec := cpioRecord{name: name, mode: field(1), nlink: field(4), rdev: [2]uint32{field(9), field(10)},
			data: string(b[dataOff : dataOff+size])}
		if field(2) != 0 || field(3) != 0 || field(5) != 0 {
			t.Errorf("%s: uid, gid, mtime = %d %d %d, want 0", name, field(2), field(3), field(5))
		}
		off = (dataOff + size + 3) &^ 3
		if name == "TRAILER!!!" {
			archives = append(archives, cur)
			cur = nil
			continue
		}
		cur = append(cur, rec)
	}
	if cur != nil {
		t.Fatalf("archive without trailer: %v", cur)
	}
	return archives
}

func TestCpioTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte("from disk"), 0o750); err != nil {
		t.Fatal(err)
	}
	build := func() []byte {
		tr := newCpioTree()
		steps := []error{
			tr.File("/etc/hostname", []byte("lab01\n"), 0o644),
			tr.Dir("/root", 0o700),
			tr.File("/root/.ssh/authorized_keys", []byte("k"), 0o600), // parent made implicitly
			tr.Symlink("/bin", "usr/bin"),
			tr.CharDev("/dev/console", 0o600, 5, 1),
			tr.CopyFile("/usr/bin/x", src),
			tr.Dir("/root", 0o700), // again: no duplicate
		}
		for _, err := range steps {
			if err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if _, err := tr.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	b := build()
	if !bytes.Equal(b, build()) {
		t.Error("two writes of the same tree differ")
	}
	if len(b)%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", len(b))
	}
	// A second archive appended (as each host's is) must parse on its own.
	second := newCpioTree()
	if err := second.File("/etc/hostname", []byte("lab02\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(b)
	if _, err := second.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	archives := readCpio(t, buf.Bytes())
	if len(archives) != 2 {
		t.Fatalf("%d archives, want 2", len(archives))
	}
	got := map[string]cpioRecord{}
	var names []string
	for _, r := range archives[0] {
		got[r.name] = r
		names = append(names, r.name)
	}
	wantNames := []string{"bin", "dev", "dev/console", "etc", "etc/hostname", "root", "root/.ssh",
		"root/.ssh/authorized_keys", "usr", "usr/bin", "usr/bin/x"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("entries = %v, want %v (parents before children)", names, wantNames)
	}
	for _, tc := range []struct {
		name string
		mode uint32
		data string
		rdev [2]uint32
	}{
		{"etc/hostname", syscall.S_IFREG | 0o644, "lab01\n", [2]uint32{}},
		{"root", syscall.S_IFDIR | 0o700, "", [2]uint32{}},
		{"root/.ssh", syscall.S_IFDIR | 0o755, "", [2]uint32{}},
		{"bin", syscall.S_IFLNK | 0o777, "usr/bin", [2]uint32{}},
		{"dev/console", syscall.S_IFCHR | 0o600, "", [2]uint32{5, 1}},
		{"usr/bin/x", syscall.S_IFREG | 0o750, "from disk", [2]uint32{}},
	} {
		r, ok := got[tc.name]
		if !ok {
			t.Errorf("%s missing", tc.name)
			continue
		}
		if r.mode != tc.mode || r.data != tc.data || r.rdev != tc.rdev {
			t.Errorf("%s = mode %o data %q rdev %v, want mode %o data %q rdev %v", tc.name, r.mode, r.data, r.rdev, tc.mode, tc.data, tc.rdev)
		}
	}
	if len(archives[1]) != 2 || archives[1][1].name != "etc/hostname" || archives[1][1].data != "lab02\n" {
		t.Errorf("second archive = %+v", archives[1])
	}
	for _, bad := range []string{"/", "", "a\x00b"} {
		if err := newCpioTree().File(bad, nil, 0o644); err == nil {
			t.Errorf("File(%q) accepted", bad)
		}
	}
}

func TestParseLdd(t *testing.T) {
	fixture, err := os.ReadFile("testdata/vm/ldd-sshd.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		in      string
		want    []string // nil: only count and shape are checked
		count   int
		wantErr bool
	}{
		{name: "sshd", in: string(fixture), count: 27}, // 28 lines, one the vDSO
		{name: "loader and vdso", in: "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n",
			want: []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}},
		{name: "missing library", in: "\tlibfoo.so.1 => not found\n", wantErr: true},
		{name: "empty", in: "", want: nil, count: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLdd(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error for %q", tc.in)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if tc.want == nil && len(got) != tc.count {
				t.Errorf("%d libraries, want %d: %v", len(got), tc.count, got)
			}
			for _, l := range got {
				if !strings.HasPrefix(l, "/") || strings.Contains(l, " ") {
					t.Errorf("library %q is not a plain absolute path", l)
				}
			}
		})
	}
}

func TestParseApt(t *testing.T) {
	dep, err := os.ReadFile("testdata/vm/apt-cache-depends.txt")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := os.ReadFile("testdata/vm/apt-cache-policy.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"depends", parseAptDepends(string(dep), "linux-image-"), "linux-image-6.1.0-56-cloud-amd64"},
		{"depends, other prefix", parseAptDepends(string(dep), "busybox"), ""},
		{"depends, alternatives", parseAptDepends("x\n |Depends: linux-image-a\n  Depends: linux-image-b\n", "linux-image-"), "linux-image-a"},
		{"candidate", parseAptPolicy(string(pol))["linux-image-6.1.0-56-cloud-amd64"], "6.1.192-2"},
		{"no candidate", parseAptPolicy("x:\n  Installed: (none)\n  Candidate: (none)\n")["x"], ""},
		{"second package", parseAptPolicy(string(pol) + "kmod:\n  Installed: 30+20221128-1\n  Candidate: 30+20221128-1\n")["kmod"], "30+20221128-1"},
		{"first of two", parseAptPolicy(string(pol) + "kmod:\n  Candidate: 30\n")["linux-image-6.1.0-56-cloud-amd64"], "6.1.192-2"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestGuestPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/bin/busybox", "/usr/bin/busybox"},
		{"/sbin/modprobe", "/usr/sbin/modprobe"},
		{"/lib64/ld-linux-x86-64.so.2", "/usr/lib64/ld-linux-x86-64.so.2"},
		{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{"/usr/lib/openssh/sftp-server", "/usr/lib/openssh/sftp-server"},
		{"/libexec/x", "/libexec/x"},
		{"/binary", "/binary"},
		{"/lib", "/usr/lib"},
	} {
		if got := mergedUsr(tc.in); got != tc.want {
			t.Errorf("mergedUsr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// guestPath resolves the directory, keeps the file name.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if got, want := guestPath(filepath.Join(dir, "link", "libx.so.1")), mergedUsr(filepath.Join(dir, "real", "libx.so.1")); got != want {
		t.Errorf("guestPath through a symlinked dir = %q, want %q", got, want)
	}
}

// fakeModule is a minimal ELF64 relocatable object with a .modinfo section,
// as a kernel module carries one.
func fakeModule(modinfo ...string) []byte {
	info := []byte(strings.Join(modinfo, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	infoOff := ehsize
	shstrOff := infoOff + len(info)
	shOff := (shstrOff + len(shstr) + 7) &^ 7
	b := make([]byte, shOff+3*shentsize)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // 64-bit, little-endian, version 1
	le := binary.LittleEndian
	le.PutUint16(b[16:], 1)  // ET_REL
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)  // version
	le.PutUint64(b[40:], uint64(shOff))
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[58:], shentsize)
	le.PutUint16(b[60:], 3) // sections
	le.PutUint16(b[62:], 2) // .shstrtab index
	copy(b[infoOff:], info)
	copy(b[shstrOff:], shstr)
	sec := func(i int, name, typ uint32, off, size int) {
		s := b[shOff+i*shentsize:]
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], typ)
		le.PutUint64(s[24:], uint64(off))
		le.PutUint64(s[32:], uint64(size))
		le.PutUint64(s[48:], 1)
	}
	sec(1, 1, 1, infoOff, len(info))    // .modinfo, PROGBITS
	sec(2, 10, 3, shstrOff, len(shstr)) // .shstrtab, STRTAB
	return b
}

func TestParseModinfo(t *testing.T) {
	for _, tc := range []struct {
		name, rel string
		info      []string
		wantName  string
		wantDeps  []string
		wantAlias []string
	}{
		{name: "bonding", rel: "kernel/drivers/net/bonding/bonding.ko",
			info:     []string{"alias=rtnl-link-bond", "depends=tls", "name=bonding", "vermagic=6.1.0 SMP"},
			wantName: "bonding", wantDeps: []string{"tls"}, wantAlias: []string{"rtnl-link-bond"}},
		{name: "no depends", rel: "kernel/net/tls/tls.ko", info: []string{"depends=", "name=tls", "alias=tcp-ulp-tls", "alias=tls"},
			wantName: "tls", wantAlias: []string{"tcp-ulp-tls", "tls"}},
		{name: "name from file", rel: "kernel/drivers/virtio/virtio-pci.ko", info: []string{"depends=virtio,virtio_ring"},
			wantName: "virtio_pci", wantDeps: []string{"virtio", "virtio_ring"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newKmod(tc.rel, fakeModule(tc.info...))
			if err != nil {
				t.Fatal(err)
			}
			if m.name != tc.wantName || !reflect.DeepEqual(m.depends, tc.wantDeps) || !reflect.DeepEqual(m.aliases, tc.wantAlias) {
				t.Errorf("got name %q deps %v aliases %v, want %q %v %v", m.name, m.depends, m.aliases, tc.wantName, tc.wantDeps, tc.wantAlias)
			}
		})
	}
	if _, err := newKmod("x.ko", []byte("not an ELF file at all, but long enough to be read")); err == nil {
		t.Error("garbage accepted as a module")
	}
}

func TestModuleClosure(t *testing.T) {
	mods := map[string]*kmod{}
	add := func(name string, deps ...string) {
		mods[name] = &kmod{name: name, rel: "kernel/" + name + ".ko", depends: deps}
	}
	add("virtio_ring")
	add("virtio", "virtio_ring")
	add("virtio_pci_modern_dev")
	add("virtio_pci", "virtio_ring", "virtio_pci_modern_dev", "virtio")
	add("bonding", "tls")
	add("tls")
	add("loop_a", "loop_b")
	add("loop_b", "loop_a")
	add("needs_missing", "gone")
	add("needs_builtin", "af_packet")
	builtin := map[string]bool{"af_packet": true, "ext4": true}
	names := func(ms []*kmod) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.name)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		want    []string
		order   []string
		wantErr string
	}{
		{name: "deps first", want: []string{"virtio_pci"}, order: []string{"virtio_ring", "virtio_pci_modern_dev", "virtio", "virtio_pci"}},
		{name: "shared deps once", want: []string{"virtio", "virtio_pci", "bonding"},
			order: []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci", "tls", "bonding"}},
		{name: "dash spelling", want: []string{"virtio-pci"}, order: []string{"virtio_ring", "virtio_pci_modern_dev", "virtio", "virtio_pci"}},
		{name: "builtin wanted", want: []string{"ext4"}, order: nil},
		{name: "builtin dependency", want: []string{"needs_builtin"}, order: []string{"needs_builtin"}},
		{name: "missing", want: []string{"netdevsim"}, wantErr: "netdevsim is not in the kernel package"},
		{name: "missing dependency", want: []string{"needs_missing"}, wantErr: "gone (needed by needs_missing)"},
		{name: "cycle", want: []string{"loop_a"}, wantErr: "cycle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := moduleClosure(mods, builtin, tc.want)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(names(got), tc.order) {
				t.Errorf("order %v, want %v", names(got), tc.order)
			}
		})
	}
}

// tarOf builds a tar stream of entries: name -> content, or "->target" for a symlink.
func tarOf(t *testing.T, entries [][2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e[0], Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(e[1]))}
		if strings.HasSuffix(e[0], "/") {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		} else if target, ok := strings.CutPrefix(e[1], "->"); ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, target, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDebPrograms(t *testing.T) {
	data := tarOf(t, [][2]string{
		{"./", ""}, {"./bin/", ""}, {"./bin/kmod", "ELF"}, {"./bin/lsmod", "->kmod"},
		{"./sbin/modprobe", "->/bin/kmod"}, {"./etc/init.d/kmod", "#!/bin/sh"},
		{"./lib/modprobe.d/aliases.conf", "alias x y"}, {"./usr/share/doc/kmod/copyright", "c"},
		{"./usr/share/initramfs-tools/hooks/kmod", "#!/bin/sh"}, {"./usr/bin/deep/x", "no"},
	})
	got, err := debPrograms(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var desc []string
	for _, p := range got {
		if p.link != "" {
			desc = append(desc, p.path+" -> "+p.link)
		} else {
			desc = append(desc, fmt.Sprintf("%s %q", p.path, p.data))
		}
	}
	want := []string{`/bin/kmod "ELF"`, "/bin/lsmod -> kmod", "/sbin/modprobe -> /bin/kmod", `/lib/modprobe.d/aliases.conf "alias x y"`}
	if !reflect.DeepEqual(desc, want) {
		t.Errorf("got %q, want %q", desc, want)
	}
}

func TestReadKernelDeb(t *testing.T) {
	rel := "6.1.0-56-cloud-amd64"
	data := tarOf(t, [][2]string{
		{"./boot/vmlinuz-" + rel, "bzImage"},
		{"./boot/config-" + rel, "CONFIG_BONDING=m"},
		{"./lib/modules/" + rel + "/kernel/drivers/net/bonding/bonding.ko", string(fakeModule("name=bonding", "depends=tls"))},
		{"./lib/modules/" + rel + "/kernel/net/tls/tls.ko", string(fakeModule("name=tls", "depends="))},
		{"./lib/modules/" + rel + "/modules.builtin", "kernel/net/packet/af_packet.ko\n"},
		{"./lib/modules/" + rel + "/modules.order", "kernel/net/tls/tls.ko\n"},
	})
	kp, err := readKernelDeb(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if kp.release != rel || string(kp.vmlinuz) != "bzImage" {
		t.Errorf("release %q vmlinuz %q", kp.release, kp.vmlinuz)
	}
	var names []string
	for n := range kp.modules {
		names = append(names, n)
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, []string{"bonding", "tls"}) || kp.modules["bonding"].rel != "kernel/drivers/net/bonding/bonding.ko" {
		t.Errorf("modules %v", names)
	}
	if !builtinModules(kp.extra["modules.builtin"])["af_packet"] || kp.extra["modules.order"] == nil {
		t.Errorf("extra files %v", kp.extra)
	}
	if _, err := readKernelDeb(bytes.NewReader(tarOf(t, [][2]string{{"./boot/vmlinuz-x", "k"}}))); err == nil {
		t.Error("a package without modules accepted")
	}
}

func vmTestState(hosts int, subnet string) *State {
	st := &State{Dir: "/var/lib/lab", Slot: 7, Subnet: subnet}
	if err := planNetwork(st, hosts, 0); err != nil {
		panic(err)
	}
	return st
}

func TestVMNICs(t *testing.T) {
	st := vmTestState(300, "10.200.0.0/16") // host indexes past 255
	macs := map[string]string{}
	for _, h := range st.Hosts {
		nics := vmNICs(st, h)
		var names []string
		for _, n := range nics {
			names = append(names, n.name)
			if prev, dup := macs[n.mac]; dup {
				t.Fatalf("MAC %s of %s %s already used by %s", n.mac, h.Name, n.name, prev)
			}
			macs[n.mac] = h.Name + " " + n.name
			first, _ := strconv.ParseUint(n.mac[:2], 16, 8)
			if first&2 == 0 || first&1 != 0 {
				t.Errorf("MAC %s is not a locally administered unicast address", n.mac)
			}
		}
		if want := []string{"eth0", "ens1f0", "ens1f1", "swp0", "swp1", "labctl0"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("NIC names %v, want %v", names, want)
		}
	}
}

func TestVMQemuArgs(t *testing.T) {
	st := vmTestState(1, "10.201.7.0/24")
	h := st.Hosts[0]
	a := &vmAssets{Kernel: "/cache/vmlinuz", Initrd: "/cache/initrd.cpio"}
	args := vmQemuArgs(a, st.hostDir(h), vmNICs(st, h))
	line := strings.Join(args, " ")
	opt := func(flag string) []string {
		var out []string
		for i, a := range args {
			if a == flag && i+1 < len(args) {
				out = append(out, args[i+1])
			}
		}
		return out
	}
	var devices []string
	for _, d := range opt("-device") {
		if strings.HasPrefix(d, "virtio-net-pci,") {
			devices = append(devices, d)
		}
	}
	if len(devices) != 6 {
		t.Fatalf("%d NICs, want 6: %v", len(devices), devices)
	}
	// Every guest NIC has one device; each data NIC shares a hub with its
	// partner and nothing else.
	hubOf := map[string]string{} // netdev id -> hub
	for _, nd := range opt("-netdev") {
		if m := regexp.MustCompile(`^hubport,id=(\w+),hubid=(\d+)$`).FindStringSubmatch(nd); m != nil {
			hubOf[m[1]] = m[2]
		}
	}
	hub := map[string]string{} // NIC name -> hub ("" if none)
	for i, n := range vmNICs(st, h) {
		var dev []string
		for _, d := range devices {
			if strings.Contains(d, "mac="+n.mac) {
				dev = append(dev, d)
			}
		}
		if len(dev) != 1 {
			t.Errorf("%s (%s): %d devices", n.name, n.mac, len(dev))
			continue
		}
		data := i >= 1 && i <= 4
		if has := strings.Contains(dev[0], "speed=10000,duplex=full"); has != data {
			t.Errorf("%s: speed and duplex set = %v, want %v", n.name, has, data)
		}
		id := regexp.MustCompile(`netdev=(\w+)`).FindStringSubmatch(dev[0])[1]
		hub[n.name] = hubOf[id]
	}
	if hub["ens1f0"] == "" || hub["ens1f0"] != hub["swp0"] || hub["ens1f1"] != hub["swp1"] || hub["ens1f0"] == hub["ens1f1"] ||
		hub["eth0"] != "" || hub["labctl0"] != "" || len(hubOf) != 4 {
		t.Errorf("hubs by NIC %v (ports %v), want ens1f0+swp0 and ens1f1+swp1 on two hubs", hub, hubOf)
	}
	netdevs := opt("-netdev")
	var ctl string
	for _, nd := range netdevs {
		if strings.HasPrefix(nd, "user,") {
			ctl = nd
		}
	}
	for _, want := range []string{"restrict=on", "hostfwd=tcp:127.0.0.1:2222-" + vmCtlGuestIP + ":22"} {
		if !strings.Contains(ctl, want) {
			t.Errorf("control netdev %q lacks %s", ctl, want)
		}
	}
	if strings.Count(ctl, "hostfwd=") != 1 {
		t.Errorf("control netdev %q forwards more than the control port", ctl)
	}
	for _, want := range []string{"-accel tcg,tb-size=", "-nodefaults", "virtio-balloon-pci,free-page-reporting=on", "-m 256", "-no-reboot",
		"-serial file:" + filepath.Join(st.hostDir(h), "console.log"), "-initrd " + filepath.Join(st.hostDir(h), "initrd.img"),
		"tap,id=mgmt,ifname=tap0,script=no,downscript=no"} {
		if !strings.Contains(line, want) {
			t.Errorf("command line lacks %q:\n%s", want, line)
		}
	}
}

// TestVMHostEnv checks host.env against the boot script: every variable the
// script reads from it is set, and nothing set goes unused.
func TestVMHostEnv(t *testing.T) {
	st := vmTestState(2, "10.201.7.0/24")
	h := st.Hosts[1]
	env := vmHostEnv(st, h, vmNICs(st, h))
	set := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(env), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		set[k] = strings.Trim(v, `"`)
	}
	for k, want := range map[string]string{
		"MGMT_NIC": "eth0", "MGMT_ADDR": h.MgmtIP + "/24", "GATEWAY": "10.201.7.1", "DATA_NICS": "ens1f0 ens1f1",
		"PARTNER_NICS": "swp0 swp1", "PARTNER_ADDR": VMPartnerAddr + "/24", "PARTNER_VLAN": "100", "CTL_NIC": "labctl0",
	} {
		if set[k] != want {
			t.Errorf("%s = %q, want %q", k, set[k], want)
		}
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{?([A-Z][A-Z_]+)`).FindAllStringSubmatch(vmRCS, -1) {
		used[m[1]] = true
	}
	for k := range set {
		if !used[k] {
			t.Errorf("host.env sets %s, which rcS never reads", k)
		}
	}
	for k := range used {
		if _, ok := set[k]; !ok && k != "PATH" {
			t.Errorf("rcS reads $%s, which host.env does not set", k)
		}
	}
}

// bondState is what /proc/net/bonding/<bond> says about 802.3ad.
type bondState struct {
	mode       string
	activeAgg  string
	partnerMAC string            // of the active aggregator
	slaveAgg   map[string]string // slave -> aggregator ID
}

func parseBonding(text string) bondState {
	st := bondState{slaveAgg: map[string]string{}}
	var slave string
	inActive := false
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch {
		case k == "Bonding Mode":
			st.mode = v
		case k == "Active Aggregator Info":
			inActive = true
		case k == "Slave Interface":
			slave, inActive = v, false
		case k == "Aggregator ID" && inActive:
			st.activeAgg = v
		case k == "Partner Mac Address" && inActive:
			st.partnerMAC = v
		case k == "Aggregator ID" && slave != "":
			st.slaveAgg[slave] = v
		}
	}
	return st
}

// aggregated reports whether every slave of want is in the active
// aggregator with a partner, and why not.
func (b bondState) aggregated(want ...string) error {
	if !strings.Contains(b.mode, "802.3ad") {
		return fmt.Errorf("mode %q", b.mode)
	}
	if b.partnerMAC == "" || b.partnerMAC == "00:00:00:00:00:00" {
		return fmt.Errorf("no LACP partner (partner MAC %q)", b.partnerMAC)
	}
	for _, s := range want {
		if b.slaveAgg[s] != b.activeAgg {
			return fmt.Errorf("slave %s in aggregator %q, active is %q", s, b.slaveAgg[s], b.activeAgg)
		}
	}
	return nil
}

func TestParseBonding(t *testing.T) {
	for _, tc := range []struct {
		file    string
		want    bondState
		wantErr string
	}{
		{file: "bonding-8023ad.txt", want: bondState{mode: "IEEE 802.3ad Dynamic link aggregation", activeAgg: "1",
			partnerMAC: "52:54:00:00:01:03", slaveAgg: map[string]string{"ens1f0": "1", "ens1f1": "1"}}},
		{file: "bonding-8023ad-split.txt", want: bondState{mode: "IEEE 802.3ad Dynamic link aggregation", activeAgg: "1",
			partnerMAC: "52:54:00:00:01:03", slaveAgg: map[string]string{"ens1f0": "1", "ens1f1": "2"}},
			wantErr: "slave ens1f1 in aggregator \"2\""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/vm", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got := parseBonding(string(b))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			err = got.aggregated("ens1f0", "ens1f1")
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("aggregated: %v, want %q", err, tc.wantErr)
			}
		})
	}
	if err := parseBonding("Bonding Mode: IEEE 802.3ad Dynamic link aggregation\n").aggregated("x"); err == nil {
		t.Error("a bond without partner counts as aggregated")
	}
}
