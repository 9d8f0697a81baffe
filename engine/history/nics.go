package history

import (
	"math"
	"math/big"
	"sort"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
)

// NIC is one hardware network interface as a facts task found it: what the vendor guides'
// "lshw -businfo" and "ethtool -i" show, its PCIe link and SR-IOV. The history keeps it for
// the report's NIC table of each host. Every value comes from the host and is kept as text
// or numbers, bounded (MaxNICs, maxNICText); people's views escape it.
type NIC struct {
	Name            string `json:"name"`
	Kind            string `json:"kind,omitempty"`
	Driver          string `json:"driver,omitempty"`
	DriverVersion   string `json:"driver_version,omitempty"`
	FirmwareVersion string `json:"firmware_version,omitempty"`
	BusInfo         string `json:"bus_info,omitempty"`
	// Master is the bond or bridge the NIC is enslaved to ("" when none).
	Master    string `json:"master,omitempty"`
	MTU       *int   `json:"mtu,omitempty"`
	SpeedMbps *int   `json:"speed_mbps,omitempty"`
	// PCIe is nil without a PCIe link (a virtual machine's NIC, a netdevsim one).
	PCIe         *NICPCIe `json:"pcie,omitempty"`
	SRIOVCapable bool     `json:"sriov_capable"`
	SRIOVTotal   *int     `json:"sriov_total_vfs,omitempty"`
	SRIOVNum     *int     `json:"sriov_num_vfs,omitempty"`
	// SRIOVPF is the PCI address of the PF of a VF ("" for anything else).
	SRIOVPF string `json:"sriov_pf_address,omitempty"`
}

// NICPCIe is a NIC's negotiated PCIe link.
type NICPCIe struct {
	Width          int      `json:"width"`
	MaxWidth       *int     `json:"max_width,omitempty"`
	SpeedGTs       float64  `json:"speed_gts"`
	Generation     *int     `json:"generation,omitempty"`
	BandwidthGbps  *float64 `json:"bandwidth_gbps,omitempty"`
	Degraded       bool     `json:"degraded"`
	Oversubscribed bool     `json:"oversubscribed"`
}

// Bounds on what NICsOf keeps: a host decides how many interfaces it reports and what their
// drivers call themselves.
const (
	MaxNICs    = 256
	maxNICText = 128
)

// NICsOf returns the hardware NICs in a facts result's data (its "nics" attribute: the facts
// module's), sorted by name: software interfaces (bonds, bridges, VLANs, veths) have no
// driver or bus to show and are left out. nil when the data has no NICs, or holds a marked
// (sensitive) value anywhere: nothing of it is kept then.
func NICsOf(data cty.Value) []NIC {
	if data == cty.NilVal || !data.IsWhollyKnown() || data.IsNull() || data.ContainsMarked() {
		return nil
	}
	nics := attr(data, "nics")
	if nics == cty.NilVal || !(nics.Type().IsObjectType() || nics.Type().IsMapType()) {
		return nil
	}
	var out []NIC
	for it := nics.ElementIterator(); it.Next(); {
		k, v := it.Element()
		if k.Type() != cty.String || !(v.Type().IsObjectType() || v.Type().IsMapType()) || v.IsNull() {
			continue
		}
		if b, ok := boolOf(attr(v, "virtual")); ok && b {
			continue
		}
		n := NIC{Name: bound(k.AsString()), Kind: str(v, "kind"), Driver: str(v, "driver"), DriverVersion: str(v, "driver_version"),
			FirmwareVersion: str(v, "firmware_version"), BusInfo: str(v, "bus_info"), Master: str(v, "master"),
			MTU: intOf(attr(v, "mtu")), SpeedMbps: intOf(attr(v, "speed_mbps")),
			SRIOVTotal: intOf(attr(v, "sriov_total_vfs")), SRIOVNum: intOf(attr(v, "sriov_num_vfs")), SRIOVPF: str(v, "sriov_pf_address")}
		n.SRIOVCapable, _ = boolOf(attr(v, "sriov_capable"))
		if p := attr(v, "pcie"); p != cty.NilVal && !p.IsNull() && (p.Type().IsObjectType() || p.Type().IsMapType()) {
			if w := intOf(attr(p, "width")); w != nil {
				pc := &NICPCIe{Width: *w, MaxWidth: intOf(attr(p, "max_width")), Generation: intOf(attr(p, "generation")),
					BandwidthGbps: floatOf(attr(p, "bandwidth_gbps"))}
				if s := floatOf(attr(p, "speed_gts")); s != nil {
					pc.SpeedGTs = *s
				}
				pc.Degraded, _ = boolOf(attr(p, "degraded"))
				pc.Oversubscribed, _ = boolOf(attr(v, "pcie_oversubscribed"))
				n.PCIe = pc
			}
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) > MaxNICs {
		out = out[:MaxNICs]
	}
	return out
}

// attr returns v's attribute (object) or element (map) name, or cty.NilVal.
func attr(v cty.Value, name string) cty.Value {
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() {
		return cty.NilVal
	}
	switch {
	case v.Type().IsObjectType():
		if v.Type().HasAttribute(name) {
			return v.GetAttr(name)
		}
	case v.Type().IsMapType():
		if k := cty.StringVal(name); v.HasIndex(k).True() {
			return v.Index(k)
		}
	}
	return cty.NilVal
}

func str(v cty.Value, name string) string {
	a := attr(v, name)
	if a == cty.NilVal || a.IsNull() || a.Type() != cty.String {
		return ""
	}
	return bound(a.AsString())
}

// bound cuts s to maxNICText bytes on a character boundary.
func bound(s string) string {
	if len(s) <= maxNICText {
		return s
	}
	s = s[:maxNICText]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func boolOf(v cty.Value) (bool, bool) {
	if v == cty.NilVal || v.IsNull() || v.Type() != cty.Bool {
		return false, false
	}
	return v.True(), true
}

func intOf(v cty.Value) *int {
	if v == cty.NilVal || v.IsNull() || v.Type() != cty.Number {
		return nil
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() || bf.Cmp(big.NewFloat(-1<<31)) < 0 || bf.Cmp(big.NewFloat(1<<31)) > 0 {
		return nil
	}
	i, _ := bf.Int64()
	n := int(i)
	return &n
}

func floatOf(v cty.Value) *float64 {
	if v == cty.NilVal || v.IsNull() || v.Type() != cty.Number {
		return nil
	}
	f, _ := v.AsBigFloat().Float64()
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil
	}
	return &f
}
