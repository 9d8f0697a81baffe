package virt

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

// The fixtures are `virsh dumpxml` output of libvirt 9.0 (Debian bookworm):
//   - two-bridges: two virtio NICs on bridges, the first with an MTU and a boot order;
//   - hostdev-vlan: a bridge NIC and an SR-IOV VF (hostdev, managed, vfio) tagged 42;
//   - direct-passthrough: a macvtap passthrough NIC, an e1000 NIC on a network, and
//     metadata of another tool;
//   - running-live / running-inactive: a running domain's live XML and its definition.
func fixture(t *testing.T, name string) *domainDoc {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".xml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parseDomain(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

// hclValue evaluates an HCL expression without variables.
func hclValue(t *testing.T, src string) cty.Value {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", src, diags)
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", src, diags)
	}
	return v
}

// wantNICs parses an interfaces argument written in HCL, as a runbook would give it.
func wantNICs(t *testing.T, src string) []nic {
	t.Helper()
	v, err := convert.Convert(hclValue(t, src), cty.List(nicObject))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	var args []*nicArg
	if err := gocty.FromCtyValue(v, &args); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	nics, errs := parseNICs(args)
	if len(errs) > 0 {
		t.Fatalf("%s: %v", src, errs)
	}
	return nics
}

// line renders an interface as one comparable line: type, source and the managed fields.
func line(d nicData) string {
	s := fmt.Sprintf("%v %v", d.Type, orNil(d.Source))
	for _, f := range []struct {
		k string
		v any
	}{{"mode", d.Mode}, {"model", d.Model}, {"mtu", d.MTU}, {"vlan", d.VLAN}, {"mac", d.MAC}} {
		if v := orNil(f.v); v != nil {
			s += fmt.Sprintf(" %s=%v", f.k, v)
		}
	}
	return s
}

// orNil is what a pointer field points to, or nil.
func orNil(p any) any {
	switch p := p.(type) {
	case *string:
		if p != nil {
			return *p
		}
	case *int:
		if p != nil {
			return *p
		}
	}
	return nil
}

func lines(ifcs []nicData) []string {
	out := make([]string, len(ifcs))
	for i, d := range ifcs {
		out[i] = line(d)
	}
	return out
}

func TestParseDomain(t *testing.T) {
	for _, tc := range []struct {
		fixture, name, uuid string
		active              bool
		nics                []string
	}{
		{"two-bridges", "two-bridges", "0b1f3c1e-6f4e-4d0a-9a57-2f6c1d6b0a01", false, []string{
			"bridge br-mgmt model=virtio mtu=1500 mac=52:54:00:aa:00:01",
			"bridge br-data model=virtio mac=52:54:00:aa:00:02"}},
		{"hostdev-vlan", "hostdev-vlan", "0b1f3c1e-6f4e-4d0a-9a57-2f6c1d6b0a02", false, []string{
			"bridge br-mgmt model=virtio mac=52:54:00:bb:00:01",
			"hostdev 0000:3b:02.1 vlan=42 mac=52:54:00:bb:00:02"}},
		{"direct-passthrough", "direct-passthrough", "0b1f3c1e-6f4e-4d0a-9a57-2f6c1d6b0a03", false, []string{
			"direct ens1f0 mode=passthrough model=virtio mac=52:54:00:cc:00:01",
			"network default model=e1000 mac=52:54:00:cc:00:02"}},
		{"running-live", "running", "0b1f3c1e-6f4e-4d0a-9a57-2f6c1d6b0a04", true, []string{
			"bridge br0 model=virtio mtu=1400 mac=52:54:00:dd:00:01"}},
		{"running-inactive", "running", "0b1f3c1e-6f4e-4d0a-9a57-2f6c1d6b0a04", false, []string{
			"bridge br0 model=virtio mtu=1400 mac=52:54:00:dd:00:01"}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			d := fixture(t, tc.fixture)
			if d.name != tc.name || d.uuid != tc.uuid || d.active != tc.active {
				t.Errorf("name %q uuid %q active %v, want %q %q %v", d.name, d.uuid, d.active, tc.name, tc.uuid, tc.active)
			}
			if got := lines(describeAll(d.ifaces)); strings.Join(got, "\n") != strings.Join(tc.nics, "\n") {
				t.Errorf("interfaces:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.nics, "\n"))
			}
			for i, s := range d.spans {
				el := string(d.raw[s[0]:s[1]])
				if !strings.HasPrefix(el, "<interface ") || !strings.HasSuffix(el, "</interface>") {
					t.Errorf("span %d is not one interface element: %q", i, el)
				}
			}
		})
	}
}

func TestParseDomainErrors(t *testing.T) {
	for _, tc := range []struct{ name, xml, want string }{
		{"not XML", "error: nothing", "no <domain> element"},
		{"other root", "<network><name>default</name></network>", "root element is <network>"},
		{"broken", "<domain><devices><interface type='bridge'>", "domain XML"},
		{"interface without type", "<domain><devices><interface/></devices></domain>", "Missing interface type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDomain([]byte(tc.xml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestPlan is the heart of vm_nic: which NICs keep their identity, what changes, and
// what a second run finds (nothing).
func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name, fixture, want string
		nonExclusive        bool
		changed             bool
		summary             string
		nics                []string // the interfaces after the plan
		// kept names, per planned NIC, the index of the interface it keeps (-1: new).
		kept []int
	}{
		{name: "bridges in sync", fixture: "two-bridges",
			want:    `[{type="bridge", source="br-mgmt", mtu=1500}, {type="bridge", source="br-data"}]`,
			summary: "2 unchanged", kept: []int{0, 1},
			nics: []string{"bridge br-mgmt model=virtio mtu=1500 mac=52:54:00:aa:00:01", "bridge br-data model=virtio mac=52:54:00:aa:00:02"}},
		{name: "an unset mtu removes it, MAC kept", fixture: "two-bridges", changed: true,
			want:    `[{type="bridge", source="br-mgmt"}, {type="bridge", source="br-data"}]`,
			summary: "1 changed, 1 unchanged", kept: []int{0, 1},
			nics: []string{"bridge br-mgmt model=virtio mac=52:54:00:aa:00:01", "bridge br-data model=virtio mac=52:54:00:aa:00:02"}},
		{name: "model and mtu change", fixture: "two-bridges", changed: true,
			want:    `[{type="bridge", source="br-mgmt", mtu=1500}, {type="bridge", source="br-data", model="e1000", mtu=9000}]`,
			summary: "1 changed, 1 unchanged", kept: []int{0, 1},
			nics: []string{"bridge br-mgmt model=virtio mtu=1500 mac=52:54:00:aa:00:01", "bridge br-data model=e1000 mtu=9000 mac=52:54:00:aa:00:02"}},
		{name: "a third NIC is added without a MAC", fixture: "two-bridges", changed: true,
			want:    `[{type="bridge", source="br-mgmt", mtu=1500}, {type="bridge", source="br-data"}, {type="network", source="default"}]`,
			summary: "1 added, 2 unchanged", kept: []int{0, 1, -1},
			nics: []string{"bridge br-mgmt model=virtio mtu=1500 mac=52:54:00:aa:00:01", "bridge br-data model=virtio mac=52:54:00:aa:00:02", "network default model=virtio"}},
		{name: "an unlisted NIC is removed", fixture: "two-bridges", changed: true,
			want:    `[{type="bridge", source="br-mgmt", mtu=1500}]`,
			summary: "1 removed, 1 unchanged", kept: []int{0},
			nics: []string{"bridge br-mgmt model=virtio mtu=1500 mac=52:54:00:aa:00:01"}},
		{name: "swapped NICs are new NICs", fixture: "two-bridges", changed: true,
			want:    `[{type="bridge", source="br-data"}, {type="bridge", source="br-mgmt", mtu=1500}]`,
			summary: "2 added, 2 removed", kept: []int{-1, -1},
			nics: []string{"bridge br-data model=virtio", "bridge br-mgmt model=virtio mtu=1500"}},
		{name: "a given MAC replaces the old one", fixture: "two-bridges", changed: true,
			want:    `[{type="bridge", source="br-mgmt", mtu=1500, mac="52:54:00:AA:00:99"}, {type="bridge", source="br-data", mac="52:54:00:aa:00:02"}]`,
			summary: "1 changed, 1 unchanged", kept: []int{0, 1},
			nics: []string{"bridge br-mgmt model=virtio mtu=1500 mac=52:54:00:aa:00:99", "bridge br-data model=virtio mac=52:54:00:aa:00:02"}},
		{name: "not exclusive: ensure one, keep the rest", fixture: "two-bridges", nonExclusive: true, changed: true,
			want:    `[{type="bridge", source="br-data", model="e1000"}]`,
			summary: "1 changed, 1 unchanged", kept: []int{0, 1},
			nics: []string{"bridge br-mgmt model=virtio mtu=1500 mac=52:54:00:aa:00:01", "bridge br-data model=e1000 mac=52:54:00:aa:00:02"}},
		{name: "not exclusive: a missing NIC goes at the end", fixture: "two-bridges", nonExclusive: true, changed: true,
			want:    `[{type="network", source="default"}]`,
			summary: "1 added, 2 unchanged", kept: []int{0, 1, -1},
			nics: []string{"bridge br-mgmt model=virtio mtu=1500 mac=52:54:00:aa:00:01", "bridge br-data model=virtio mac=52:54:00:aa:00:02", "network default model=virtio"}},
		{name: "not exclusive: in sync", fixture: "two-bridges", nonExclusive: true,
			want:    `[{type="bridge", source="br-data"}]`,
			summary: "2 unchanged", kept: []int{0, 1},
			nics: []string{"bridge br-mgmt model=virtio mtu=1500 mac=52:54:00:aa:00:01", "bridge br-data model=virtio mac=52:54:00:aa:00:02"}},
		{name: "hostdev in sync (short PCI address)", fixture: "hostdev-vlan",
			want:    `[{type="bridge", source="br-mgmt"}, {type="hostdev", source="3b:02.1", vlan=42}]`,
			summary: "2 unchanged", kept: []int{0, 1},
			nics: []string{"bridge br-mgmt model=virtio mac=52:54:00:bb:00:01", "hostdev 0000:3b:02.1 vlan=42 mac=52:54:00:bb:00:02"}},
		{name: "hostdev VLAN change keeps the MAC", fixture: "hostdev-vlan", changed: true,
			want:    `[{type="bridge", source="br-mgmt"}, {type="hostdev", source="0000:3B:02.1", vlan=43}]`,
			summary: "1 changed, 1 unchanged", kept: []int{0, 1},
			nics: []string{"bridge br-mgmt model=virtio mac=52:54:00:bb:00:01", "hostdev 0000:3b:02.1 vlan=43 mac=52:54:00:bb:00:02"}},
		{name: "hostdev unset VLAN removes the tag", fixture: "hostdev-vlan", changed: true,
			want:    `[{type="bridge", source="br-mgmt"}, {type="hostdev", source="0000:3b:02.1"}]`,
			summary: "1 changed, 1 unchanged", kept: []int{0, 1},
			nics: []string{"bridge br-mgmt model=virtio mac=52:54:00:bb:00:01", "hostdev 0000:3b:02.1 mac=52:54:00:bb:00:02"}},
		{name: "another VF is a new NIC", fixture: "hostdev-vlan", changed: true,
			want:    `[{type="bridge", source="br-mgmt"}, {type="hostdev", source="0000:3b:02.2", vlan=42}]`,
			summary: "1 added, 1 removed, 1 unchanged", kept: []int{0, -1},
			nics: []string{"bridge br-mgmt model=virtio mac=52:54:00:bb:00:01", "hostdev 0000:3b:02.2 vlan=42"}},
		{name: "direct in sync", fixture: "direct-passthrough",
			want:    `[{type="direct", source="ens1f0", mode="passthrough"}, {type="network", source="default", model="e1000"}]`,
			summary: "2 unchanged", kept: []int{0, 1},
			nics: []string{"direct ens1f0 mode=passthrough model=virtio mac=52:54:00:cc:00:01", "network default model=e1000 mac=52:54:00:cc:00:02"}},
		{name: "direct mode and default model", fixture: "direct-passthrough", changed: true,
			want:    `[{type="direct", source="ens1f0", mode="bridge"}, {type="network", source="default"}]`,
			summary: "2 changed", kept: []int{0, 1},
			nics: []string{"direct ens1f0 mode=bridge model=virtio mac=52:54:00:cc:00:01", "network default model=virtio mac=52:54:00:cc:00:02"}},
		{name: "direct passthrough gets a VLAN", fixture: "direct-passthrough", changed: true,
			want:    `[{type="direct", source="ens1f0", mode="passthrough", vlan=7}, {type="network", source="default", model="e1000"}]`,
			summary: "1 changed, 1 unchanged", kept: []int{0, 1},
			nics: []string{"direct ens1f0 mode=passthrough model=virtio vlan=7 mac=52:54:00:cc:00:01", "network default model=e1000 mac=52:54:00:cc:00:02"}},
		{name: "no NICs at all", fixture: "direct-passthrough", changed: true,
			want: `[]`, summary: "2 removed", kept: []int{}, nics: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := fixture(t, tc.fixture)
			before := listXML(doc.ifaces)
			want := wantNICs(t, tc.want)
			p := planNICs(doc.ifaces, want, !tc.nonExclusive)
			if listXML(doc.ifaces) != before {
				t.Fatal("planning modified the domain's interfaces")
			}
			if p.changed() != tc.changed || p.summary() != tc.summary {
				t.Errorf("changed %v (%s), want %v (%s)", p.changed(), p.summary(), tc.changed, tc.summary)
			}
			got := lines(describeAll(p.interfaces()))
			if strings.Join(got, "\n") != strings.Join(tc.nics, "\n") {
				t.Errorf("interfaces:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.nics, "\n"))
			}
			for i, o := range p.out {
				if i < len(tc.kept) && o.from != tc.kept[i] {
					t.Errorf("NIC %d keeps interface %d, want %d", i, o.from, tc.kept[i])
				}
				// A kept NIC keeps its guest PCI slot; a new one lets libvirt pick.
				if o.from >= 0 && ifaceXML(&doc.ifaces[o.from]) != ifaceXML(&o.ifc) && o.ifc.Address != doc.ifaces[o.from].Address {
					t.Errorf("NIC %d lost its PCI address", i)
				}
				if o.from < 0 && o.ifc.Address != nil {
					t.Errorf("new NIC %d has an address", i)
				}
			}
			if len(p.out) != len(tc.kept) {
				t.Errorf("%d NICs planned, want %d", len(p.out), len(tc.kept))
			}

			// The definition written back, read again, is the plan and nothing else: a
			// second run finds nothing to do and everything outside <interface> is as it was.
			out := doc.withInterfaces(p.elements(doc))
			again, err := parseDomain(out)
			if err != nil {
				t.Fatalf("new definition: %v\n%s", err, out)
			}
			if again.uuid != doc.uuid || again.name != doc.name {
				t.Errorf("new definition is of %s %s, want %s %s", again.name, again.uuid, doc.name, doc.uuid)
			}
			if p2 := planNICs(again.ifaces, want, !tc.nonExclusive); p2.changed() {
				t.Errorf("second plan still changes: %s\n%s", p2.summary(), out)
			}
			if got, want := withoutInterfaces(again), withoutInterfaces(doc); got != want {
				t.Errorf("the definition changed outside its interfaces:\n%s\nwas:\n%s", got, want)
			}
			for i, o := range p.out {
				if o.from >= 0 && !o.changed {
					s, s2 := doc.spans[o.from], again.spans[i]
					if !bytes.Equal(doc.raw[s[0]:s[1]], again.raw[s2[0]:s2[1]]) {
						t.Errorf("unchanged NIC %d was rewritten", i)
					}
				}
			}
		})
	}
}

// withoutInterfaces is the document's text with its interface elements and blank lines cut.
func withoutInterfaces(d *domainDoc) string {
	var b strings.Builder
	prev := int64(0)
	for _, s := range d.spans {
		b.Write(d.raw[prev:s[0]])
		prev = s[1]
	}
	b.Write(d.raw[prev:])
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

// TestWithInterfacesPlacement: interfaces go into <devices> however the document has it.
func TestWithInterfacesPlacement(t *testing.T) {
	elem := `<interface type="bridge"><source bridge="br0"></source></interface>`
	for _, tc := range []struct{ name, xml string }{
		{"devices without interfaces", "<domain><name>a</name><devices><emulator>/q</emulator></devices></domain>"},
		{"empty devices element", "<domain><name>a</name><devices/></domain>"},
		{"empty devices element before the end", "<domain><name>a</name><devices/><seclabel type='none'/></domain>"},
		{"no devices", "<domain><name>a</name></domain>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := parseDomain([]byte(tc.xml))
			if err != nil {
				t.Fatal(err)
			}
			out := d.withInterfaces([]string{elem, elem})
			again, err := parseDomain(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if len(again.ifaces) != 2 || again.name != "a" {
				t.Fatalf("got %d interfaces in %q:\n%s", len(again.ifaces), again.name, out)
			}
			if strings.Contains(tc.xml, "seclabel") && !strings.Contains(string(out), "<seclabel") {
				t.Fatalf("seclabel lost:\n%s", out)
			}
		})
	}
}

func TestSameDevices(t *testing.T) {
	live, persistent := fixture(t, "running-live"), fixture(t, "running-inactive")
	if !sameDevices(live.ifaces, persistent.ifaces) {
		t.Fatalf("a domain started from its definition differs from it:\n%s\n%s", listXML(live.ifaces), listXML(persistent.ifaces))
	}
	for _, tc := range []struct {
		name, want string
		same       bool
	}{
		{"in sync", `[{type="bridge", source="br0", mtu=1400}]`, true},
		{"new MTU", `[{type="bridge", source="br0", mtu=9000}]`, false},
		{"added NIC (no MAC yet)", `[{type="bridge", source="br0", mtu=1400}, {type="bridge", source="br1"}]`, false},
		{"other bridge", `[{type="bridge", source="br1", mtu=1400, mac="52:54:00:dd:00:01"}]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planNICs(persistent.ifaces, wantNICs(t, tc.want), true)
			if got := sameDevices(live.ifaces, p.interfaces()); got != tc.same {
				t.Errorf("sameDevices = %v, want %v", got, tc.same)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name, domain, interfaces, uri string
		want                          []string // substrings of the errors, in order; none: valid
	}{
		{name: "every type", interfaces: `[{type="bridge", source="br0", mtu=9000, mac="52:54:00:00:00:01"},
			{type="direct", source="ens1f0", mode="passthrough", vlan=10},
			{type="network", source="default", model="e1000"},
			{type="hostdev", source="0000:3b:02.1", vlan=4094}]`},
		{name: "no NICs", interfaces: `[]`},
		{name: "typo in type", interfaces: `[{type="bridg", source="br0"}]`, want: []string{`interfaces[0].type: "bridg" is not a NIC type; expected one of: bridge, direct, network, hostdev. Did you mean "bridge"?`}},
		{name: "null type", interfaces: `[{type=null, source="br0"}]`, want: []string{`interfaces[0].type: "" is not a NIC type`}},
		{name: "null source", interfaces: `[{type="bridge", source=null}]`, want: []string{"interfaces[0].source: every NIC needs a source (the host bridge's name)"}},
		{name: "empty source", interfaces: `[{type="network", source=" "}]`, want: []string{"interfaces[0].source: every NIC needs a source (the libvirt network's name)"}},
		{name: "bad PCI address", interfaces: `[{type="hostdev", source="3b:20.1"}]`, want: []string{`"3b:20.1" is not a PCI address`}},
		{name: "same VF twice", interfaces: `[{type="hostdev", source="3b:02.1"}, {type="hostdev", source="0000:3b:02.1"}]`, want: []string{"the VF 0000:3b:02.1 is already interfaces[0]"}},
		{name: "mode on a bridge", interfaces: `[{type="bridge", source="br0", mode="vepa"}]`, want: []string{"interfaces[0].mode: mode applies to direct NICs only"}},
		{name: "bad direct mode", interfaces: `[{type="direct", source="eth1", mode="pasthrough"}]`, want: []string{`"pasthrough" is not a direct mode; expected one of: passthrough, bridge, vepa, private. Did you mean "passthrough"?`}},
		{name: "passthrough twice", interfaces: `[{type="direct", source="eth1", mode="passthrough"}, {type="direct", source="eth1", mode="passthrough"}]`, want: []string{"eth1 is already passed through by interfaces[0]"}},
		{name: "model on hostdev", interfaces: `[{type="hostdev", source="3b:02.1", model="virtio"}]`, want: []string{"a hostdev NIC is the VF itself"}},
		{name: "mtu on direct", interfaces: `[{type="direct", source="eth1", mtu=9000}]`, want: []string{"interfaces[0].mtu: libvirt sets the MTU of bridge and network NICs only (a direct NIC"}},
		{name: "mtu out of range", interfaces: `[{type="bridge", source="br0", mtu=70000}]`, want: []string{"interfaces[0].mtu: 70000 is not a whole number from 68 to 65535"}},
		{name: "fractional vlan", interfaces: `[{type="hostdev", source="3b:02.1", vlan=1.5}]`, want: []string{"interfaces[0].vlan: 1.5 is not a whole number from 1 to 4094"}},
		{name: "vlan on a bridge", interfaces: `[{type="bridge", source="br0", vlan=10}]`, want: []string{"libvirt tags only hostdev NICs and direct NICs in passthrough mode"}},
		{name: "vlan on direct vepa", interfaces: `[{type="direct", source="eth1", vlan=10}]`, want: []string{"libvirt tags only hostdev NICs"}},
		{name: "multicast MAC", interfaces: `[{type="bridge", source="br0", mac="01:00:5e:00:00:01"}]`, want: []string{"01:00:5e:00:00:01 is not a unicast address"}},
		{name: "malformed MAC", interfaces: `[{type="bridge", source="br0", mac="52:54:00:00:01"}]`, want: []string{`"52:54:00:00:01" is not a MAC address`}},
		{name: "MAC twice", interfaces: `[{type="bridge", source="br0", mac="52:54:00:00:00:01"}, {type="bridge", source="br1", mac="52:54:00:00:00:01"}]`, want: []string{"interfaces[1].mac: 52:54:00:00:00:01 is already the MAC of interfaces[0]"}},
		{name: "several problems at once", interfaces: `[{type="nope", source=""}, {type="hostdev", source="x", mtu=1500}]`,
			want: []string{"interfaces[0].type", "interfaces[0].source", "interfaces[1].source", "interfaces[1].mtu"}},
		{name: "empty domain", domain: " ", interfaces: `[]`, want: []string{"domain must name a libvirt domain"}},
		{name: "bad uri", uri: "qemu", interfaces: `[]`, want: []string{`"qemu" is not a libvirt URI`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := moduletest.Validate(t, VMNIC{}, objArgs(t, tc.domain, tc.interfaces, tc.uri, true))
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d: %q", len(errs), errs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

// objArgs builds the module's arguments as a task gives them.
func objArgs(t *testing.T, domain, interfaces, uri string, exclusive bool) map[string]cty.Value {
	t.Helper()
	if domain == "" {
		domain = "bigip1"
	}
	m := map[string]cty.Value{"domain": cty.StringVal(domain), "interfaces": hclValue(t, interfaces), "exclusive": cty.BoolVal(exclusive)}
	if uri != "" {
		m["uri"] = cty.StringVal(uri)
	}
	return m
}

func TestLibvirtError(t *testing.T) {
	for _, tc := range []struct{ stderr, want string }{
		{"error: failed to get domain 'nope'\n\n", "failed to get domain 'nope'"},
		{"error: Failed to define domain from /tmp/runbook-vm_nic-1.xml\nerror: unsupported configuration: setting MTU on interface type direct is not supported yet\n\n",
			"unsupported configuration: setting MTU on interface type direct is not supported yet"},
		{"error: Failed to define domain from /tmp/x.xml\nerror: XML document failed to validate against schema: Unable to validate doc against /usr/share/libvirt/schemas/domain.rng\nExtra element devices in interleave\nElement domain failed to validate content\n",
			"XML document failed to validate against schema: Unable to validate doc against /usr/share/libvirt/schemas/domain.rng; Extra element devices in interleave; Element domain failed to validate content"},
		{"error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n",
			"failed to connect to the hypervisor: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory"},
		{"", ""},
	} {
		if got := libvirtError(tc.stderr); got != tc.want {
			t.Errorf("libvirtError(%q) = %q, want %q", tc.stderr, got, tc.want)
		}
	}
}

// fakeVirsh is a virsh that serves the XML files of dir (NAME.xml, and
// NAME.live.xml for a running domain's live XML), stores what define is given as
// defined.xml (and as the domain's definition), and logs every call to calls.
const fakeVirsh = `#!/bin/sh
dir=$(dirname "$0")
echo "$*" >> "$dir/calls"
shift 3 # -q -c URI
case "$1" in
dumpxml)
  shift
  [ "$1" = --security-info ] || { echo "error: dumpxml without --security-info" >&2; exit 1; }
  shift
  inactive=
  [ "$1" = --inactive ] && { inactive=1; shift; }
  name=$2
  if [ -z "$inactive" ] && [ -f "$dir/$name.live.xml" ]; then cat "$dir/$name.live.xml"; exit 0; fi
  [ -f "$dir/$name.xml" ] || { echo "error: failed to get domain '$name'" >&2; exit 1; }
  cat "$dir/$name.xml" ;;
define)
  f=$4
  [ -f "$dir/refuse" ] && { echo "error: Failed to define domain from $f" >&2; cat "$dir/refuse" >&2; exit 1; }
  cp "$f" "$dir/defined.xml"
  name=$(sed -n 's:.*<name>\(.*\)</name>.*:\1:p' "$f" | head -1)
  cp "$f" "$dir/$name.xml" ;;
*) echo "error: unexpected $*" >&2; exit 1 ;;
esac
`

// setupFakeVirsh puts fakeVirsh in a directory of its own, the only one VMNIC{dirs: ...}
// looks for virsh in, with the domains' fixtures.
func setupFakeVirsh(t *testing.T, domains map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "virsh"), []byte(fakeVirsh), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, fix := range domains {
		b, err := os.ReadFile(filepath.Join("testdata", fix+".xml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".xml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRun drives Run against a stand-in virsh: check defines nothing, apply defines once
// and reports what libvirt then holds, libvirt's refusals and unknown domains are failures
// with libvirt's text.
func TestRun(t *testing.T) {
	t.Run("check, apply, in sync", func(t *testing.T) {
		dir := setupFakeVirsh(t, map[string]string{"two-bridges": "two-bridges"})
		vm := VMNIC{dirs: []string{dir}}
		args := objArgs(t, "two-bridges", `[{type="bridge", source="br-mgmt"}, {type="direct", source="ens1f0", mode="passthrough"}]`, "", true)
		defines := func() int {
			calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
			return strings.Count(string(calls), " define ")
		}
		// Check defines nothing; apply defines once; the check and apply after it, nothing.
		res := moduletest.Timeline(t, vm, args, moduletest.Unchanged(func(t testing.TB, step string) {
			want := 1
			if step == "check" {
				want = 0
				if _, err := os.Stat(filepath.Join(dir, "defined.xml")); err == nil {
					t.Fatal("check mode defined the domain")
				}
			}
			if n := defines(); n != want {
				t.Fatalf("%s: %d defines so far, want %d", step, n, want)
			}
		}))
		checked, applied := res[0], res[1]
		if !strings.Contains(checked.Diff.After, "ens1f0") || checked.Data.(*vmnicResult).RestartRequired {
			t.Fatalf("check: %+v", checked)
		}
		if applied.Msg != "two-bridges: defined NICs: 1 changed, 1 added, 1 removed" {
			t.Fatalf("apply: %s %s", applied.Status, applied.Msg)
		}
		d := applied.Data.(*vmnicResult)
		got := lines(d.Interfaces)
		if want := "bridge br-mgmt model=virtio mac=52:54:00:aa:00:01|direct ens1f0 mode=passthrough model=virtio"; strings.Join(got, "|") != want {
			t.Errorf("interfaces %q, want %q", got, want)
		}
		if d.UUID != "0b1f3c1e-6f4e-4d0a-9a57-2f6c1d6b0a01" {
			t.Errorf("uuid %v", d.UUID)
		}
		defined, _ := os.ReadFile(filepath.Join(dir, "defined.xml"))
		if !bytes.Contains(defined, []byte("<uuid>0b1f3c1e-6f4e-4d0a-9a57-2f6c1d6b0a01</uuid>")) || !bytes.Contains(defined, []byte(`<boot order="1">`)) {
			t.Errorf("the definition lost the UUID or the kept NIC's boot order:\n%s", defined)
		}
		if n := defines(); n != 1 {
			calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
			t.Errorf("%d defines, want 1:\n%s", n, calls)
		}
	})
	t.Run("running domain needs a restart", func(t *testing.T) {
		vm := VMNIC{dirs: []string{setupFakeVirsh(t, map[string]string{"running": "running-inactive", "running.live": "running-live"})}}
		args := objArgs(t, "running", `[{type="bridge", source="br0", mtu=9000}]`, "", true)
		res, err := moduletest.Run(t, vm, args, true)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Data.(*vmnicResult).RestartRequired || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "shut down and started again") {
			t.Fatalf("restart not reported: %+v", res)
		}
		// In sync with the definition, still out of sync with what runs.
		res, err = moduletest.Run(t, vm, args, false)
		if err != nil || res.Status != modules.StatusOK || !res.Data.(*vmnicResult).RestartRequired {
			t.Fatalf("second run: %v %+v", err, res)
		}
		// The definition as it was (what the domain runs with): nothing to restart.
		args = objArgs(t, "running", `[{type="bridge", source="br0", mtu=1400}]`, "", true)
		res, err = moduletest.Run(t, vm, args, true)
		if err != nil || res.Data.(*vmnicResult).RestartRequired || len(res.Warnings) != 0 {
			t.Fatalf("back to the live NICs: %v %+v", err, res)
		}
	})
	t.Run("unknown domain", func(t *testing.T) {
		vm := VMNIC{dirs: []string{setupFakeVirsh(t, nil)}}
		_, err := moduletest.Run(t, vm, objArgs(t, "nosuch", `[]`, "", true), false)
		f, ok := err.(*modules.Failure)
		if !ok || f.Msg != "read domain nosuch: failed to get domain 'nosuch'" || f.Stderr != "" {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("libvirt refuses the definition", func(t *testing.T) {
		dir := setupFakeVirsh(t, map[string]string{"two-bridges": "two-bridges"})
		os.WriteFile(filepath.Join(dir, "refuse"), []byte("error: unsupported configuration: no way\n"), 0o644)
		_, err := moduletest.Run(t, VMNIC{dirs: []string{dir}}, objArgs(t, "two-bridges", `[{type="network", source="default"}]`, "", true), true)
		f, ok := err.(*modules.Failure)
		if !ok || f.Msg != "define domain: unsupported configuration: no way" {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("no virsh", func(t *testing.T) {
		// Looked for only in an empty directory: the machine's own virsh, if it has one,
		// is not found.
		_, err := moduletest.Run(t, VMNIC{dirs: []string{t.TempDir()}}, objArgs(t, "x", `[]`, "", true), false)
		if err == nil || !strings.Contains(err.Error(), "virsh not found") {
			t.Fatalf("err = %v", err)
		}
	})
}
