package virt

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// domainDoc is a domain's XML as libvirt wrote it, with its interfaces decoded and the
// byte range of each kept, so that a new definition replaces those elements and nothing
// else: elements runbook does not know (metadata of other tools, devices newer than the
// XML library) go back to libvirt exactly as they came.
type domainDoc struct {
	raw    []byte
	name   string
	uuid   string
	active bool // the XML has an id: it describes a running domain
	ifaces []libvirtxml.DomainInterface
	spans  [][2]int64 // byte range of each <interface> element in raw
	// devices is the range of the <devices> element ({-1,-1} when there is none), and
	// devicesClose where its end tag starts (-1 when it closes itself).
	devices      [2]int64
	devicesClose int64
	domainClose  int64 // where </domain> starts
}

// parseDomain reads the XML of `virsh dumpxml`.
func parseDomain(raw []byte) (*domainDoc, error) {
	doc := &domainDoc{raw: raw, devices: [2]int64{-1, -1}, devicesClose: -1, domainClose: -1}
	dec := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	inDevices := false
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("domain XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case depth == 0:
				if t.Name.Local != "domain" {
					return nil, fmt.Errorf("domain XML: the root element is <%s>, not <domain>", t.Name.Local)
				}
				for _, a := range t.Attr {
					if a.Name.Local == "id" {
						doc.active = true
					}
				}
			case depth == 1 && (t.Name.Local == "name" || t.Name.Local == "uuid"):
				var s string
				if err := dec.DecodeElement(&s, &t); err != nil {
					return nil, fmt.Errorf("domain XML: <%s>: %w", t.Name.Local, err)
				}
				if t.Name.Local == "name" {
					doc.name = strings.TrimSpace(s)
				} else {
					doc.uuid = strings.TrimSpace(s)
				}
				continue // DecodeElement consumed the end tag
			case depth == 1 && t.Name.Local == "devices":
				inDevices = true
				doc.devices[0] = off
			case depth == 2 && inDevices && t.Name.Local == "interface":
				var ifc libvirtxml.DomainInterface
				if err := dec.DecodeElement(&ifc, &t); err != nil {
					return nil, fmt.Errorf("domain XML: interface %d: %w", len(doc.ifaces), err)
				}
				doc.ifaces = append(doc.ifaces, ifc)
				doc.spans = append(doc.spans, [2]int64{off, dec.InputOffset()})
				continue
			}
			depth++
		case xml.EndElement:
			depth--
			switch {
			case depth == 1 && t.Name.Local == "devices":
				inDevices = false
				doc.devices[1] = dec.InputOffset()
				if bytes.HasPrefix(raw[off:], []byte("</devices")) {
					doc.devicesClose = off
				}
			case depth == 0 && t.Name.Local == "domain":
				doc.domainClose = off
			}
		}
	}
	if doc.domainClose < 0 {
		return nil, errors.New("domain XML: no <domain> element")
	}
	return doc, nil
}

// withInterfaces returns the document with its interfaces replaced by elems (XML text of
// <interface> elements, in order, each continuing its lines with indent()). They go where
// the first interface was, or at the end of <devices>; libvirt orders devices itself when
// it parses the definition.
func (d *domainDoc) withInterfaces(elems []string) []byte {
	ind := d.indent()
	block := strings.Join(elems, "\n"+ind)
	var b bytes.Buffer
	switch {
	case len(d.spans) > 0:
		prev := int64(0)
		for i, s := range d.spans {
			between := d.raw[prev:s[0]]
			// The line breaks and indentation between removed elements go with them.
			if i == 0 || len(bytes.TrimSpace(between)) > 0 {
				b.Write(between)
			}
			if i == 0 {
				b.WriteString(block)
			}
			prev = s[1]
		}
		b.Write(d.raw[prev:])
	case d.devicesClose >= 0:
		b.Write(d.raw[:d.devicesClose])
		if block != "" {
			b.WriteString("  " + block + "\n" + ind[:max(0, len(ind)-2)])
		}
		b.Write(d.raw[d.devicesClose:])
	case d.devices[0] >= 0: // <devices/>
		b.Write(d.raw[:d.devices[0]])
		b.WriteString("<devices>\n" + ind + block + "\n</devices>")
		b.Write(d.raw[d.devices[1]:])
	default:
		b.Write(d.raw[:d.domainClose])
		b.WriteString("<devices>\n" + ind + block + "\n</devices>\n")
		b.Write(d.raw[d.domainClose:])
	}
	return b.Bytes()
}

// indent is the indentation of the domain's interface elements: that of its first one, or
// one step deeper than the </devices> line, as libvirt writes it.
func (d *domainDoc) indent() string {
	lineIndent := func(at int64) string {
		start := bytes.LastIndexByte(d.raw[:at], '\n') + 1
		ws := d.raw[start:at]
		if len(bytes.TrimLeft(ws, " \t")) != 0 {
			return ""
		}
		return string(ws)
	}
	switch {
	case len(d.spans) > 0:
		return lineIndent(d.spans[0][0])
	case d.devicesClose >= 0:
		return lineIndent(d.devicesClose) + "  "
	}
	return "    "
}

// ifaceText renders an interface for a new definition: continuation lines start with
// indent, the first is placed by the caller.
func ifaceText(ifc *libvirtxml.DomainInterface, indent string) string {
	b, err := xml.MarshalIndent(ifc, indent, "  ")
	if err != nil {
		return fmt.Sprintf("<!-- interface not renderable: %v -->", err)
	}
	return strings.TrimPrefix(string(b), indent)
}

// ifaceType is the interface's type attribute.
func ifaceType(ifc *libvirtxml.DomainInterface) string {
	s := ifc.Source
	if s == nil {
		return ""
	}
	switch {
	case s.Bridge != nil:
		return typeBridge
	case s.Direct != nil:
		return typeDirect
	case s.Network != nil:
		return typeNetwork
	case s.Hostdev != nil:
		return typeHostdev
	case s.User != nil:
		return "user"
	case s.Ethernet != nil:
		return "ethernet"
	case s.VHostUser != nil:
		return "vhostuser"
	case s.Server != nil:
		return "server"
	case s.Client != nil:
		return "client"
	case s.MCast != nil:
		return "mcast"
	case s.Internal != nil:
		return "internal"
	case s.UDP != nil:
		return "udp"
	case s.VDPA != nil:
		return "vdpa"
	case s.Null != nil:
		return "null"
	case s.VDS != nil:
		return "vds"
	}
	return ""
}

// ifaceSource is what the interface is attached to, written as vm_nic's source argument
// is ("" for types vm_nic does not manage).
func ifaceSource(ifc *libvirtxml.DomainInterface) string {
	s := ifc.Source
	if s == nil {
		return ""
	}
	switch {
	case s.Bridge != nil:
		return s.Bridge.Bridge
	case s.Direct != nil:
		return s.Direct.Dev
	case s.Network != nil:
		return s.Network.Network
	case s.Hostdev != nil && s.Hostdev.PCI != nil && s.Hostdev.PCI.Address != nil:
		return formatPCI(s.Hostdev.PCI.Address)
	}
	return ""
}

func formatPCI(a *libvirtxml.DomainAddressPCI) string {
	v := func(p *uint) uint {
		if p == nil {
			return 0
		}
		return *p
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", v(a.Domain), v(a.Bus), v(a.Slot), v(a.Function))
}

// pciAddress parses a canonical PCI address (see canonicalPCI).
func pciAddress(s string) *libvirtxml.DomainAddressPCI {
	var dom, bus, slot, fn uint
	if _, err := fmt.Sscanf(s, "%x:%x:%x.%x", &dom, &bus, &slot, &fn); err != nil {
		return nil
	}
	return &libvirtxml.DomainAddressPCI{Domain: &dom, Bus: &bus, Slot: &slot, Function: &fn}
}

// ifaceXML renders an interface the way diffs show it.
func ifaceXML(ifc *libvirtxml.DomainInterface) string {
	b, err := xml.MarshalIndent(ifc, "", "  ")
	if err != nil {
		return fmt.Sprintf("<!-- interface not renderable: %v -->", err)
	}
	return string(b)
}
