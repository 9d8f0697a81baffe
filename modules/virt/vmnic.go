package virt

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

func init() {
	modules.Register[vmnicArgs, vmnicResult](VMNIC{})
}

// NIC types vm_nic manages, as libvirt names them in <interface type=...>.
const (
	typeBridge  = "bridge"
	typeDirect  = "direct"
	typeNetwork = "network"
	typeHostdev = "hostdev"
)

var (
	nicTypes    = []string{typeBridge, typeDirect, typeNetwork, typeHostdev}
	directModes = []string{"passthrough", "bridge", "vepa", "private"}
	// libvirt's default mode for a direct (macvtap) interface.
	defaultDirectMode = "vepa"
	defaultModel      = "virtio"
)

// nicObject is one element of interfaces; type and source are required.
var nicObject = cty.ObjectWithOptionalAttrs(map[string]cty.Type{
	"type":   cty.String,
	"source": cty.String,
	"mode":   cty.String,
	"model":  cty.String,
	"mtu":    cty.Number,
	"mac":    cty.String,
	"vlan":   cty.Number,
}, []string{"mode", "model", "mtu", "mac", "vlan"})

// VMNIC manages the network interfaces of one libvirt domain.
type VMNIC struct {
	// dirs, when set, are the only directories virsh is looked for in (tests point them
	// at a stand-in); else PATH and the sbin directories (host.Exec).
	dirs []string
}

// vmnicArgs are the vm_nic module's arguments.
type vmnicArgs struct {
	Domain     string    `cty:"domain"`
	Interfaces []*nicArg `cty:"interfaces"` // an element may be null
	Exclusive  bool      `cty:"exclusive"`
	URI        string    `cty:"uri"`
}

// nicArg is one element of interfaces, as given; parseNICs checks it and makes a nic.
type nicArg struct {
	// Type and Source are required, yet may be null: parseNICs says what a NIC needs.
	Type   *string `cty:"type"`
	Source *string `cty:"source"`
	Mode   *string `cty:"mode"`
	Model  *string `cty:"model"`
	// MTU and VLAN are numbers as given, so that a fraction or a number out of range is
	// reported in the words of parseNICs.
	MTU  *float64 `cty:"mtu"`
	MAC  *string  `cty:"mac"`
	VLAN *float64 `cty:"vlan"`
}

// vmnicResult is what the vm_nic module returns.
type vmnicResult struct {
	Interfaces      []nicData `cty:"interfaces"`
	RestartRequired bool      `cty:"restart_required"`
	UUID            string    `cty:"uuid"`
}

// nicData is one interface of the domain as vm_nic reports it: the fields of its
// arguments, nil where the interface has none.
type nicData struct {
	Type   string  `cty:"type"`
	Source *string `cty:"source"`
	Mode   *string `cty:"mode"`
	Model  *string `cty:"model"`
	MTU    *int    `cty:"mtu"`
	MAC    *string `cty:"mac"`
	VLAN   *int    `cty:"vlan"`
}

func (VMNIC) Info() modules.Info {
	return modules.Info{
		Name:    "vm_nic",
		Family:  "virt",
		Summary: "Give a libvirt guest exactly the NICs listed, keeping the MACs and PCI slots of those it already has.",
		Description: `Edits the persistent definition of a libvirt domain (what it boots with next) so that its
<interface> devices are the ones listed, in order. The definition is read with virsh dumpxml
--inactive --security-info (so secrets such as a console password are kept), only its
interfaces are replaced, and the result is written back with virsh define: everything else in
the domain, its UUID included, stays as it was.

A listed NIC is the same NIC as the domain's interface at the same position when both have the
same type and source; it then keeps its MAC address, guest PCI slot and any settings runbook does
not manage (boot order, driver, filters), so the guest sees no new device. Any other listed NIC is
new: libvirt gives it a MAC (unless mac is set) and a free PCI slot. With exclusive = false, the
domain's other NICs stay, a listed NIC matches the first interface of the same type and source
wherever it is, and missing ones are added at the end.

Each NIC's fields say all about it: mode applies to direct NICs (unset: libvirt's default, vepa),
model to all but hostdev (unset: virtio), mtu to bridge and network NICs, vlan to hostdev NICs and
direct NICs in passthrough mode (the only ones libvirt tags itself); an unset mtu or vlan removes
one the NIC had. A hostdev NIC gives the guest an SR-IOV virtual function; the VF's trust and
spoof-check settings are the PF driver's business and belong to the sriov module, not here.

When the domain is running, the change takes effect only after it is stopped and started again
(a reboot inside the guest keeps the old devices): restart_required says so and a warning is
shown. libvirt's own error text is shown when it refuses the definition. In check mode nothing
is defined.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "domain", Type: cty.String, Required: true, Doc: "Name of the libvirt domain (it must be defined already)."},
				{Name: "interfaces", Type: cty.List(nicObject), Required: true,
					Doc: `The NICs in guest order, each an object: type ("bridge", "direct", "network" or "hostdev"), source (bridge, host NIC, network, or VF PCI address "0000:3b:02.1"), mode (direct only), model (default "virtio"; not hostdev), mtu, mac, vlan.`},
				{Name: "exclusive", Type: cty.Bool, Default: cty.True, Doc: "Remove the domain's NICs that are not listed. false: only ensure the listed ones."},
				{Name: "uri", Type: cty.String, Default: cty.StringVal("qemu:///system"), Doc: "libvirt connection URI."},
			},
		},
		Returns: []modules.Field{
			{Name: "interfaces", Type: cty.List(cty.Object(map[string]cty.Type{
				"type": cty.String, "source": cty.String, "mode": cty.String, "model": cty.String,
				"mtu": cty.Number, "mac": cty.String, "vlan": cty.Number,
			})), Doc: "The domain's NICs as now defined, in order, with their MACs (null for a NIC check mode would add)."},
			{Name: "restart_required", Type: cty.Bool, Doc: "The domain is running and its persistent NICs differ from the ones it runs with."},
			{Name: "uuid", Type: cty.String, Doc: "The domain's UUID."},
		},
		Examples: []modules.Example{
			{Title: "A BIG-IP VE: management on a bridge, two SR-IOV VFs tagged per VLAN", HCL: `task "bigip1 NICs" {
  vm_nic {
    domain = "bigip1"
    interfaces = [
      { type = "bridge", source = "br-mgmt" },
      { type = "hostdev", source = "0000:3b:02.1", vlan = 101 },
      { type = "hostdev", source = "0000:3b:0a.1", vlan = 102 },
    ]
  }
}`},
			{Title: "Add a macvtap NIC on a host port, leaving the guest's other NICs alone", HCL: `task "bigip1 HA link" {
  vm_nic {
    domain     = "bigip1"
    exclusive  = false
    interfaces = [{ type = "direct", source = "ens1f1", mode = "passthrough", mac = "52:54:00:0a:00:01" }]
  }
}`},
		},
	}
}

// Validate checks every NIC against the rules libvirt applies when the domain starts, so a
// runbook learns of them before any host is touched.
func (VMNIC) Validate(args vmnicArgs) []modules.ArgError {
	var errs []modules.ArgError
	if strings.TrimSpace(args.Domain) == "" {
		errs = append(errs, modules.ArgError{Arg: "domain", Msg: "domain must name a libvirt domain."})
	}
	if !strings.Contains(args.URI, ":") {
		errs = append(errs, modules.ArgError{Arg: "uri", Msg: fmt.Sprintf("%q is not a libvirt URI such as qemu:///system.", args.URI)})
	}
	_, nicErrs := parseNICs(args.Interfaces)
	return append(errs, nicErrs...)
}

// nic is one wanted interface, checked and with defaults applied.
type nic struct {
	Type   string
	Source string // hostdev: the PCI address in canonical form
	Mode   string // direct only
	Model  string // "" for hostdev
	MTU    uint   // 0: none (bridge and network only)
	VLAN   uint   // 0: none (hostdev and direct only)
	MAC    string // "": keep the NIC's MAC, or let libvirt choose one
}

var (
	macPattern = regexp.MustCompile(`^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$`)
	// A PCI address as lspci -D prints it; the domain may be left out. Slots go to 0x1f.
	pciPattern = regexp.MustCompile(`^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([01][0-9a-fA-F])\.([0-7])$`)
	// What a model name may be: libvirt passes it to QEMU as a device name.
	modelPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
)

// parseNICs turns the interfaces argument into nics, reporting every problem at once.
func parseNICs(v []*nicArg) ([]nic, []modules.ArgError) {
	if v == nil {
		return nil, []modules.ArgError{{Arg: "interfaces", Msg: "interfaces is required."}}
	}
	var out []nic
	var errs []modules.ArgError
	bad := func(i int, field, format string, a ...any) {
		errs = append(errs, modules.ArgError{Arg: "interfaces", Msg: fmt.Sprintf("interfaces[%d].%s: ", i, field) + fmt.Sprintf(format, a...)})
	}
	str := func(s *string) string {
		if s == nil {
			return ""
		}
		return strings.TrimSpace(*s)
	}
	num := func(i int, f *float64, name string, lo, hi uint) uint {
		if f == nil {
			return 0
		}
		if *f != math.Trunc(*f) || *f < float64(lo) || *f > float64(hi) {
			bad(i, name, "%s is not a whole number from %d to %d.", strconv.FormatFloat(*f, 'f', -1, 64), lo, hi)
			return 0
		}
		return uint(*f)
	}
	seenPCI := map[string]int{}
	seenMAC := map[string]int{}
	seenPassthrough := map[string]int{}
	for i, o := range v {
		if o == nil {
			bad(i, "type", "the NIC is null.")
			continue
		}
		n := nic{Type: str(o.Type), Source: str(o.Source), Mode: str(o.Mode), Model: str(o.Model), MAC: strings.ToLower(str(o.MAC))}
		n.MTU = num(i, o.MTU, "mtu", 68, 65535)
		n.VLAN = num(i, o.VLAN, "vlan", 1, 4094)
		okType := true
		switch n.Type {
		case typeBridge, typeDirect, typeNetwork, typeHostdev:
		default:
			okType = false
			msg := fmt.Sprintf("%q is not a NIC type; expected one of: %s.", n.Type, strings.Join(nicTypes, ", "))
			if s := modules.Suggest(n.Type, nicTypes); s != "" {
				msg += fmt.Sprintf(" Did you mean %q?", s)
			}
			bad(i, "type", "%s", msg)
		}
		if n.Source == "" {
			bad(i, "source", "every NIC needs a source (%s).", sourceHelp(n.Type))
		}
		if n.Type == typeHostdev && n.Source != "" {
			canon, ok := canonicalPCI(n.Source)
			if !ok {
				bad(i, "source", "%q is not a PCI address such as \"0000:3b:02.1\".", n.Source)
			} else {
				n.Source = canon
				if j, dup := seenPCI[canon]; dup {
					bad(i, "source", "the VF %s is already interfaces[%d]; a device can be given to a guest once.", canon, j)
				}
				seenPCI[canon] = i
			}
		}
		if n.Mode != "" && n.Type != typeDirect && okType {
			bad(i, "mode", "mode applies to direct NICs only.")
		}
		if n.Type == typeDirect {
			if n.Mode == "" {
				n.Mode = defaultDirectMode
			} else if !slices.Contains(directModes, n.Mode) {
				msg := fmt.Sprintf("%q is not a direct mode; expected one of: %s.", n.Mode, strings.Join(directModes, ", "))
				if s := modules.Suggest(n.Mode, directModes); s != "" {
					msg += fmt.Sprintf(" Did you mean %q?", s)
				}
				bad(i, "mode", "%s", msg)
			}
			if n.Mode == "passthrough" && n.Source != "" {
				if j, dup := seenPassthrough[n.Source]; dup {
					bad(i, "source", "%s is already passed through by interfaces[%d]; passthrough gives the whole device to one NIC.", n.Source, j)
				}
				seenPassthrough[n.Source] = i
			}
		}
		switch {
		case n.Type == typeHostdev && n.Model != "":
			bad(i, "model", "a hostdev NIC is the VF itself; it has no emulated model.")
		case n.Type != typeHostdev && n.Model == "":
			n.Model = defaultModel
		case n.Model != "" && !modelPattern.MatchString(n.Model):
			bad(i, "model", "%q is not a model name such as \"virtio\" or \"e1000\".", n.Model)
		}
		if n.MTU != 0 && okType && n.Type != typeBridge && n.Type != typeNetwork {
			bad(i, "mtu", "libvirt sets the MTU of bridge and network NICs only (a %s NIC takes the host device's).", n.Type)
		}
		if n.VLAN != 0 && okType && n.Type != typeHostdev && !(n.Type == typeDirect && n.Mode == "passthrough") {
			bad(i, "vlan", "libvirt tags only hostdev NICs and direct NICs in passthrough mode (SR-IOV VFs); tag a bridge's port on the host instead.")
		}
		if n.MAC != "" {
			if !macPattern.MatchString(n.MAC) {
				bad(i, "mac", "%q is not a MAC address such as \"52:54:00:12:34:56\".", n.MAC)
			} else if b, _ := strconv.ParseUint(n.MAC[:2], 16, 8); b&1 == 1 || n.MAC == "00:00:00:00:00:00" {
				bad(i, "mac", "%s is not a unicast address: the low bit of the first byte must be 0.", n.MAC)
			} else {
				if j, dup := seenMAC[n.MAC]; dup {
					bad(i, "mac", "%s is already the MAC of interfaces[%d].", n.MAC, j)
				}
				seenMAC[n.MAC] = i
			}
		}
		out = append(out, n)
	}
	return out, errs
}

func sourceHelp(typ string) string {
	switch typ {
	case typeBridge:
		return "the host bridge's name"
	case typeDirect:
		return "the host NIC's name"
	case typeNetwork:
		return "the libvirt network's name"
	case typeHostdev:
		return `the VF's PCI address, e.g. "0000:3b:02.1"`
	}
	return "a bridge, host NIC, network or PCI address"
}

// canonicalPCI writes a PCI address the way lspci -D does: 0000:3b:02.1.
func canonicalPCI(s string) (string, bool) {
	m := pciPattern.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	dom := m[1]
	if dom == "" {
		dom = "0000"
	}
	return strings.ToLower(fmt.Sprintf("%s:%s:%s.%s", dom, m[2], m[3], m[4])), true
}
