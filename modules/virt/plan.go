package virt

import (
	"fmt"
	"reflect"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// planned is one interface of the new definition.
type planned struct {
	ifc libvirtxml.DomainInterface
	// from is the index of the domain's interface this NIC is (it keeps its MAC, PCI slot
	// and everything vm_nic does not manage), or -1 for a new NIC.
	from int
	// changed says a kept interface had a field changed.
	changed bool
}

// nicPlan is what vm_nic would make of a domain's interfaces.
type nicPlan struct {
	out     []planned
	removed []int // indexes of the domain's interfaces that go away
}

// changed reports whether the plan changes the definition at all. Kept NICs never move:
// with exclusive they match by position, without it they stay where they are.
func (p nicPlan) changed() bool {
	if len(p.removed) > 0 {
		return true
	}
	for _, o := range p.out {
		if o.from < 0 || o.changed {
			return true
		}
	}
	return false
}

// summary says in a few words what the plan does, for the result's message.
func (p nicPlan) summary() string {
	var kept, changed, added int
	for _, o := range p.out {
		switch {
		case o.from < 0:
			added++
		case o.changed:
			changed++
		default:
			kept++
		}
	}
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{changed, "changed"}, {added, "added"}, {len(p.removed), "removed"}, {kept, "unchanged"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if len(parts) == 0 {
		return "no NICs"
	}
	return strings.Join(parts, ", ")
}

// planNICs decides the domain's new interfaces. With exclusive, the result is want in
// order, and a wanted NIC keeps the existing interface at its position when both have the
// same type and source. Without, the existing interfaces stay in place, each wanted NIC
// updates the first unclaimed interface of its type and source, and the others are added
// at the end.
func planNICs(existing []libvirtxml.DomainInterface, want []nic, exclusive bool) nicPlan {
	var p nicPlan
	if exclusive {
		used := make([]bool, len(existing))
		for i, n := range want {
			if i < len(existing) && sameNIC(&existing[i], n) {
				p.out = append(p.out, shape(n, &existing[i], i))
				used[i] = true
				continue
			}
			p.out = append(p.out, shape(n, nil, -1))
		}
		for i, u := range used {
			if !u {
				p.removed = append(p.removed, i)
			}
		}
		return p
	}
	for i := range existing {
		p.out = append(p.out, planned{ifc: existing[i], from: i})
	}
	claimed := make([]bool, len(existing))
	for _, n := range want {
		found := false
		for j := range existing {
			if !claimed[j] && sameNIC(&existing[j], n) {
				claimed[j] = true
				p.out[j] = shape(n, &existing[j], j)
				found = true
				break
			}
		}
		if !found {
			p.out = append(p.out, shape(n, nil, -1))
		}
	}
	return p
}

func sameNIC(ifc *libvirtxml.DomainInterface, n nic) bool {
	return ifaceType(ifc) == n.Type && ifaceSource(ifc) == n.Source
}

// shape returns the interface n asks for: base (the domain's interface at index from)
// with vm_nic's fields set, or a new interface when base is nil. base is never modified:
// its pointers are replaced, not written through.
func shape(n nic, base *libvirtxml.DomainInterface, from int) planned {
	var out libvirtxml.DomainInterface
	if base != nil {
		out = *base
	}
	if base == nil {
		src := &libvirtxml.DomainInterfaceSource{}
		switch n.Type {
		case typeBridge:
			src.Bridge = &libvirtxml.DomainInterfaceSourceBridge{Bridge: n.Source}
		case typeNetwork:
			src.Network = &libvirtxml.DomainInterfaceSourceNetwork{Network: n.Source}
		case typeDirect:
			src.Direct = &libvirtxml.DomainInterfaceSourceDirect{Dev: n.Source, Mode: n.Mode}
		case typeHostdev:
			// managed: libvirt binds the VF to vfio-pci when the guest starts and gives
			// it back to its driver when the guest stops.
			out.Managed = "yes"
			src.Hostdev = &libvirtxml.DomainInterfaceSourceHostdev{PCI: &libvirtxml.DomainHostdevSubsysPCISource{Address: pciAddress(n.Source)}}
		}
		out.Source = src
	}
	if n.Type == typeDirect && directMode(&out) != n.Mode {
		src := *out.Source
		d := *src.Direct
		d.Mode = n.Mode
		src.Direct = &d
		out.Source = &src
	}
	if n.Type != typeHostdev && (out.Model == nil || out.Model.Type != n.Model) {
		out.Model = &libvirtxml.DomainInterfaceModel{Type: n.Model}
	}
	if n.Type == typeBridge || n.Type == typeNetwork {
		if cur := ifaceMTU(&out); cur != n.MTU {
			out.MTU = nil
			if n.MTU != 0 {
				out.MTU = &libvirtxml.DomainInterfaceMTU{Size: n.MTU}
			}
		}
	}
	if n.Type == typeHostdev || n.Type == typeDirect {
		if !vlanIs(&out, n.VLAN) {
			out.VLan = nil
			if n.VLAN != 0 {
				out.VLan = &libvirtxml.DomainInterfaceVLan{Tags: []libvirtxml.DomainInterfaceVLanTag{{ID: n.VLAN}}}
			}
		}
	}
	if n.MAC != "" && (out.MAC == nil || !strings.EqualFold(out.MAC.Address, n.MAC)) {
		out.MAC = &libvirtxml.DomainInterfaceMAC{Address: n.MAC}
	}
	p := planned{ifc: out, from: from}
	if base != nil {
		p.changed = ifaceXML(base) != ifaceXML(&out)
	}
	return p
}

// directMode is a direct interface's mode; libvirt's default when the XML has none.
func directMode(ifc *libvirtxml.DomainInterface) string {
	if ifc.Source == nil || ifc.Source.Direct == nil {
		return ""
	}
	if ifc.Source.Direct.Mode == "" {
		return defaultDirectMode
	}
	return ifc.Source.Direct.Mode
}

func ifaceMTU(ifc *libvirtxml.DomainInterface) uint {
	if ifc.MTU == nil {
		return 0
	}
	return ifc.MTU.Size
}

// vlanIs reports whether the interface carries exactly the one tag id (none for 0).
func vlanIs(ifc *libvirtxml.DomainInterface, id uint) bool {
	v := ifc.VLan
	if id == 0 {
		return v == nil || (len(v.Tags) == 0 && v.Trunk == "")
	}
	return v != nil && v.Trunk == "" && len(v.Tags) == 1 && v.Tags[0].ID == id && v.Tags[0].NativeMode == ""
}

// describe is an interface as vm_nic reports it in its data: the fields of its arguments,
// null where the NIC has none (a NIC check mode would add has no MAC yet).
func describe(ifc *libvirtxml.DomainInterface) nicData {
	d := nicData{Type: ifaceType(ifc)}
	if s := ifaceSource(ifc); s != "" {
		d.Source = &s
	}
	if mode := directMode(ifc); mode != "" {
		d.Mode = &mode
	}
	if ifc.Model != nil && ifc.Model.Type != "" {
		model := ifc.Model.Type
		d.Model = &model
	}
	if ifc.MTU != nil {
		mtu := int(ifc.MTU.Size)
		d.MTU = &mtu
	}
	if ifc.MAC != nil && ifc.MAC.Address != "" {
		mac := strings.ToLower(ifc.MAC.Address)
		d.MAC = &mac
	}
	if ifc.VLan != nil && len(ifc.VLan.Tags) > 0 {
		vlan := int(ifc.VLan.Tags[0].ID)
		d.VLAN = &vlan
	}
	return d
}

func describeAll(ifcs []libvirtxml.DomainInterface) []nicData {
	out := make([]nicData, 0, len(ifcs))
	for i := range ifcs {
		out = append(out, describe(&ifcs[i]))
	}
	return out
}

// sameDevices reports whether a running domain's NICs (live) are the ones it is defined
// with (persistent), as the guest would see them: type, source, mode, model, MTU, VLAN and
// MAC, in order.
func sameDevices(live, persistent []libvirtxml.DomainInterface) bool {
	return reflect.DeepEqual(describeAll(live), describeAll(persistent))
}

func (p nicPlan) interfaces() []libvirtxml.DomainInterface {
	out := make([]libvirtxml.DomainInterface, len(p.out))
	for i, o := range p.out {
		out[i] = o.ifc
	}
	return out
}

// elements is the XML text of the planned interfaces for the new definition: a kept,
// unchanged interface is the domain's own text, byte for byte.
func (p nicPlan) elements(doc *domainDoc) []string {
	out := make([]string, len(p.out))
	ind := doc.indent()
	for i, o := range p.out {
		if o.from >= 0 && !o.changed {
			s := doc.spans[o.from]
			out[i] = string(doc.raw[s[0]:s[1]])
			continue
		}
		out[i] = ifaceText(&p.out[i].ifc, ind)
	}
	return out
}

// listXML renders interfaces for a diff, one element after another.
func listXML(ifcs []libvirtxml.DomainInterface) string {
	var b strings.Builder
	for i := range ifcs {
		b.WriteString(ifaceXML(&ifcs[i]))
		b.WriteString("\n")
	}
	return b.String()
}
