package facts

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

// TestGatherReal reads this machine and compares with what the kernel says directly.
func TestGatherReal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("facts read Linux interfaces")
	}
	m := gather(t, "/")
	if id, _ := get(m, "os.id"); id == "" {
		t.Error("os.id is empty")
	}
	release, machine := uname()
	if m["kernel"] != release || release == "" {
		t.Errorf("kernel = %v, uname says %q", m["kernel"], release)
	}
	if m["arch"] != machine || machine == "" {
		t.Errorf("arch = %v, uname says %q", m["arch"], machine)
	}
	if h, _ := os.Hostname(); m["hostname"] != h {
		t.Errorf("hostname = %v, want %q", m["hostname"], h)
	}
	nics := m["nics"].(map[string]any)
	if _, ok := nics["lo"]; ok {
		t.Error("lo is reported")
	}
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range ents {
		name := e.Name()
		if fi, err := os.Stat(filepath.Join("/sys/class/net", name)); name == "lo" || err != nil || !fi.IsDir() {
			continue
		}
		seen++
		n, ok := nics[name].(map[string]any)
		if !ok {
			t.Errorf("%s is missing", name)
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/sys/class/net", name, "mtu"))
		if mtu, _ := strconv.Atoi(strings.TrimSpace(string(b))); n["mtu"] != mtu {
			t.Errorf("%s mtu = %v, sysfs says %d", name, n["mtu"], mtu)
		}
		if t2, err := os.Readlink(filepath.Join("/sys/class/net", name, "device", "driver")); err == nil {
			if n["driver"] != filepath.Base(t2) {
				t.Errorf("%s driver = %v, sysfs says %s", name, n["driver"], filepath.Base(t2))
			}
		}
		// ethtool's bus info and the sysfs PCI parent must agree for PCI NICs.
		if addr := n["pci_address"].(string); addr != "" && n["bus_info"] != addr {
			t.Errorf("%s bus_info = %v, pci_address = %s", name, n["bus_info"], addr)
		}
		// Every driver answers ETHTOOL_GDRVINFO with a driver name; the helper must have
		// asked (fixture trees cannot show this).
		if n["driver"] == "" {
			t.Errorf("%s: no driver from sysfs or ethtool", name)
		}
	}
	if len(nics) != seen {
		t.Errorf("%d NICs reported, /sys/class/net has %d besides lo", len(nics), seen)
	}
}

// args is the task's arguments: gather unset (nil) or the list given.
func args(gather ...string) map[string]cty.Value {
	in := map[string]cty.Value{}
	if gather != nil {
		vals := make([]cty.Value, len(gather))
		for i, g := range gather {
			vals[i] = cty.StringVal(g)
		}
		in["gather"] = cty.ListValEmpty(cty.String)
		if len(vals) > 0 {
			in["gather"] = cty.ListVal(vals)
		}
	}
	return in
}

func TestValidate(t *testing.T) {
	cases := []struct {
		gather []string
		errs   []string
	}{
		{nil, nil},
		{[]string{}, nil},
		{[]string{"os", "init", "selinux", "network", "nics"}, nil},
		{[]string{"nic"}, []string{`unknown subset "nic"; did you mean "nics"?`}},
		{[]string{"os", "disks"}, []string{`unknown subset "disks"; known: os, init, selinux, network, nics.`}},
	}
	for _, c := range cases {
		var got []string
		for _, e := range moduletest.Validate(t, Facts{}, args(c.gather...)) {
			if e.Arg != "gather" {
				t.Errorf("error names %q, want gather", e.Arg)
			}
			got = append(got, e.Msg)
		}
		if !reflect.DeepEqual(got, c.errs) {
			t.Errorf("Validate(%v) = %q, want %q", c.gather, got, c.errs)
		}
	}
}

// TestRunCheckAndApply: the module only reads, so check and apply give the same ok result.
func TestRunCheckAndApply(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("facts read Linux interfaces")
	}
	var results []*modules.Result
	for _, apply := range []bool{false, true} {
		res, err := moduletest.Run(t, Facts{}, args("os", "init"), apply)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != modules.StatusOK || res.Diff != nil || res.RebootRequired {
			t.Errorf("apply=%v: %+v", apply, res)
		}
		results = append(results, res)
	}
	if !reflect.DeepEqual(results[0].Data, results[1].Data) || results[0].Msg != results[1].Msg {
		t.Errorf("check and apply differ:\n%v\n%v", results[0], results[1])
	}
	if _, ok := results[0].Data.(map[string]any)["nics"]; ok {
		t.Error("gather = [os, init] read the NICs")
	}
	if !strings.Contains(results[0].Msg, results[0].Data.(map[string]any)["init"].(string)) {
		t.Errorf("msg %q does not say the init system", results[0].Msg)
	}
}

// TestReturnsDocumentGather: every top-level key Gather produces is documented, and
// nothing documented is missing.
func TestReturnsDocumentGather(t *testing.T) {
	m := gather(t, extract(t, "el8"))
	documented := map[string]bool{}
	for _, f := range (Facts{}).Info().Returns {
		documented[f.Name] = true
		if _, ok := m[f.Name]; !ok {
			t.Errorf("Returns documents %q, Gather does not produce it", f.Name)
		}
		if f.Doc == "" {
			t.Errorf("%s has no doc", f.Name)
		}
	}
	for k := range m {
		if !documented[k] {
			t.Errorf("Gather produces %q, Returns does not document it", k)
		}
	}
	// Each NIC key is named in the nics doc.
	var nicsDoc string
	for _, f := range (Facts{}).Info().Returns {
		if f.Name == "nics" {
			nicsDoc = f.Doc
		}
	}
	for k := range m["nics"].(map[string]any)["ens1f0"].(map[string]any) {
		if !strings.Contains(nicsDoc, k) {
			t.Errorf("nics doc does not mention %q", k)
		}
	}
}

func TestSummary(t *testing.T) {
	got := summary(gather(t, extract(t, "el9")))
	want := "rhel 9.3, systemd, selinux permissive, NetworkManager, 3 NICs (eth0 veth0 veth1)"
	if got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}
