package testenv

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPatchNetdevsimBus(t *testing.T) {
	const bus = `static struct device_attribute nsim_bus_dev_numvfs_attr =
	__ATTR(sriov_numvfs, 0664, nsim_bus_dev_numvfs_show,
	       nsim_bus_dev_numvfs_store);

static struct attribute *nsim_bus_dev_attrs[] = {
	&nsim_bus_dev_numvfs_attr.attr,
	&nsim_bus_dev_new_port_attr.attr,
	NULL,
};
`
	for _, tc := range []struct {
		name, src string
		ok        bool
	}{
		{"linux 6.1", bus, true},
		{"no attribute list", strings.Replace(bus, "nsim_bus_dev_attrs[]", "nsim_attrs[]", 1), false},
		{"no sriov_numvfs", strings.Replace(bus, "\t&nsim_bus_dev_numvfs_attr.attr,\n", "", 1), false},
		{"twice", bus + bus, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := patchNetdevsimBus(tc.src)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			def := strings.Index(got, "__ATTR(sriov_totalvfs, 0444")
			list := strings.Index(got, "static struct attribute *nsim_bus_dev_attrs[]")
			use := strings.Index(got, "\t&nsim_bus_dev_numvfs_attr.attr,\n\t&nsim_bus_dev_totalvfs_attr.attr,\n")
			if def < 0 || list < def || use < list {
				t.Errorf("sriov_totalvfs not defined before the list and listed after sriov_numvfs:\n%s", got)
			}
		})
	}
}

func TestNetdevsimFiles(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, typ byte, body string) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	add("linux-source-6.1/drivers/net/netdevsim/", tar.TypeDir, "")
	add("linux-source-6.1/drivers/net/netdevsim/Makefile", tar.TypeReg, "obj-$(CONFIG_NETDEVSIM) += netdevsim.o\n")
	add("linux-source-6.1/drivers/net/netdevsim/bus.c", tar.TypeReg, "bus\n")
	add("linux-source-6.1/drivers/net/dummy.c", tar.TypeReg, "dummy\n")
	// The selftests' own netdevsim directory must not overwrite the driver's Makefile.
	add("linux-source-6.1/tools/testing/selftests/drivers/net/netdevsim/Makefile", tar.TypeReg, "include ../../../lib.mk\n")
	add("linux-source-6.1/drivers/net/netdevsim/sub/x.c", tar.TypeReg, "nested\n")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n, err := netdevsimFiles(&buf, dir)
	if err != nil || n != 2 {
		t.Fatalf("netdevsimFiles: %d files, %v; want 2", n, err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"Makefile", "bus.c"}) {
		t.Errorf("files %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "Makefile")); !strings.HasPrefix(string(b), "obj-$(CONFIG_NETDEVSIM)") {
		t.Errorf("Makefile is %q", b)
	}
}

func TestNetdevsimSkip(t *testing.T) {
	for _, tc := range []struct {
		missing []string
		want    string
	}{
		{nil, ""},
		{[]string{"gcc-12"}, "needs gcc-12 ("},
		{[]string{"gcc-12", "make"}, "needs gcc-12, make ("},
	} {
		got := netdevsimSkip(tc.missing)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("netdevsimSkip(%v) = %q, want %q in it", tc.missing, got, tc.want)
		}
	}
}
