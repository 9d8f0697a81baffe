package facts

import (
	"math"
	"sort"
	"strconv"
	"strings"
)

// PCIe data rate per lane after line encoding, in Gbit/s, by transfer rate in GT/s:
//
//	2.5 GT/s (Gen1), 5 GT/s (Gen2): 8b/10b encoding      → 2.0 and 4.0
//	8, 16, 32 GT/s (Gen3–Gen5): 128b/130b encoding        → 7.877, 15.754, 31.508
//	64 GT/s (Gen6): PAM4 with 256-byte FLITs, 242 of which carry data → 60.5
//
// Protocol overhead above the physical layer (TLP headers, flow control) is not taken off,
// so an x8 Gen3 link is 63.0 Gbit/s and an x16 Gen3 link 126.0 Gbit/s: the figures NIC
// vendors' tuning guides compare port speeds against.
var pcieLane = []struct {
	gts, gbps float64
	gen       int
}{
	{2.5, 2.5 * 8 / 10, 1},
	{5, 5 * 8 / 10, 2},
	{8, 8 * 128.0 / 130, 3},
	{16, 16 * 128.0 / 130, 4},
	{32, 32 * 128.0 / 130, 5},
	{64, 64 * 242.0 / 256, 6},
}

// parseGTs reads a link speed as sysfs writes it: "8.0 GT/s PCIe", "8 GT/s", "2.5 GT/s".
// "Unknown" (no link) gives false.
func parseGTs(s string) (float64, bool) {
	f := strings.Fields(s)
	if len(f) < 2 || f[1] != "GT/s" {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v <= 0 {
		return 0, false
	}
	return v, true
}

// laneRate returns the generation and per-lane data rate of a transfer rate.
func laneRate(gts float64) (gen int, gbps float64, ok bool) {
	for _, l := range pcieLane {
		if math.Abs(l.gts-gts) < 0.01 {
			return l.gen, l.gbps, true
		}
	}
	return 0, 0, false
}

// round1 keeps one decimal: bandwidth figures are estimates, not measurements.
func round1(v float64) float64 { return math.Round(v*10) / 10 }

// bandwidth is lanes × per-lane rate, or false when either is unknown.
func bandwidth(width int, gts float64) (float64, bool) {
	_, rate, ok := laneRate(gts)
	if !ok || width <= 0 {
		return 0, false
	}
	return round1(float64(width) * rate), true
}

// readPCIe reads a PCI function's negotiated and maximum link. It returns nil when the
// function has no PCIe link attributes (conventional PCI, most virtual machines' devices)
// or the link is down.
func readPCIe(f rootFS, dev string) map[string]any {
	width, okW := f.num(dev + "/current_link_width")
	speed, okS := parseGTs(f.str(dev + "/current_link_speed"))
	if !okW || !okS || width <= 0 {
		return nil
	}
	maxWidth, okMW := f.num(dev + "/max_link_width")
	maxSpeed, okMS := parseGTs(f.str(dev + "/max_link_speed"))
	gen, _, _ := laneRate(speed)
	bw, okBW := bandwidth(width, speed)
	out := map[string]any{
		"width":          width,
		"max_width":      nullable(maxWidth, okMW),
		"speed_gts":      speed,
		"max_speed_gts":  nil,
		"generation":     nullable(gen, gen > 0),
		"bandwidth_gbps": nil,
		// The link trained below what the card can do: a smaller slot, a riser, a
		// chipset-attached slot, or a bad seat.
		"degraded": (okMW && width < maxWidth) || (okMS && speed < maxSpeed),
	}
	if okMS {
		out["max_speed_gts"] = maxSpeed
	}
	if okBW {
		out["bandwidth_gbps"] = bw
	}
	if mbw, ok := bandwidth(maxWidth, maxSpeed); ok && okMW && okMS {
		out["max_bandwidth_gbps"] = mbw
	} else {
		out["max_bandwidth_gbps"] = nil
	}
	return out
}

// pcieDevice is one PCI device (domain:bus:device) with the network ports on its functions.
type pcieDevice struct {
	address   string
	ports     []string
	speedMbps int
	slotGbps  float64
}

// slotOf cuts the function off a PCI address: "0000:3b:00.1" → "0000:3b:00".
func slotOf(addr string) string {
	if i := strings.LastIndexByte(addr, '.'); i > 0 {
		return addr[:i]
	}
	return addr
}

// oversubscription groups the physical ports by PCI device and flags each device whose
// ports' link speeds add up to more than its PCIe link carries. Only ports with a known
// speed count (a port without link adds nothing). Each NIC of a flagged device gets
// pcie_oversubscribed = true. It returns the pcie_devices list, sorted by address.
func oversubscription(nics map[string]map[string]any) []any {
	devs := map[string]*pcieDevice{}
	for name, n := range nics {
		addr, _ := n["pci_address"].(string)
		pcie, _ := n["pcie"].(map[string]any)
		if addr == "" || pcie == nil || n["sriov_pf_address"] != "" {
			continue
		}
		bw, ok := pcie["bandwidth_gbps"].(float64)
		if !ok {
			continue
		}
		key := slotOf(addr)
		d := devs[key]
		if d == nil {
			d = &pcieDevice{address: key, slotGbps: bw}
			devs[key] = d
		}
		// Functions of one device share its link; the smallest figure is the safe one.
		d.slotGbps = min(d.slotGbps, bw)
		d.ports = append(d.ports, name)
		if s, ok := n["speed_mbps"].(int); ok && s > 0 {
			d.speedMbps += s
		}
	}
	keys := make([]string, 0, len(devs))
	for k := range devs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []any{}
	for _, k := range keys {
		d := devs[k]
		sort.Strings(d.ports)
		total := round1(float64(d.speedMbps) / 1000)
		over := total > d.slotGbps
		ports := make([]any, len(d.ports))
		for i, p := range d.ports {
			ports[i] = p
			nics[p]["pcie_oversubscribed"] = over
		}
		out = append(out, map[string]any{
			"address":               d.address,
			"ports":                 ports,
			"port_speed_total_gbps": total,
			"slot_bandwidth_gbps":   d.slotGbps,
			"oversubscribed":        over,
		})
	}
	return out
}
