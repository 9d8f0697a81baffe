package facts

import (
	"os"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Network backends, in the order one wins over another when several are in use.
const (
	backendNetplan        = "netplan"
	backendNetworkManager = "NetworkManager"
	backendNetworkd       = "systemd-networkd"
	backendNetworkScripts = "network-scripts"
	backendIfupdown       = "ifupdown"
)

// backendState is what the files say about one network stack.
type backendState struct {
	name string
	// active: its daemon or service is running now.
	active bool
	// enabled: its service starts at boot.
	enabled bool
	// configured: it has interface configuration of its own.
	configured bool
}

// selectable says whether the stack can be the one in charge: network-scripts only is
// when it has ifcfg files to bring up, since the legacy service is a one-shot that does
// nothing without them.
func (b backendState) selectable(running bool) bool {
	on := b.enabled
	if running {
		on = b.active
	}
	if b.name == backendNetworkScripts {
		return on && b.configured
	}
	return on
}

// gatherNetwork decides, from files only, which network stack manages the host's
// interfaces. netplan comes first when its files define devices (it generates the
// configuration of NetworkManager or networkd, so that is where changes belong); then the
// first stack that is running, in the order of the backend constants; then the first one
// enabled at boot.
func gatherNetwork(f rootFS) map[string]any {
	units := activeUnits(f)
	procs := processNames(f)
	wants := enabledUnits(f)

	netplanDevices, renderer := netplanConfig(f)
	states := []backendState{
		{name: backendNetplan, configured: netplanDevices > 0,
			enabled: netplanDevices > 0, active: netplanDevices > 0},
		{name: backendNetworkManager,
			active:     units["NetworkManager.service"] || procs["NetworkManager"],
			enabled:    wants["NetworkManager.service"],
			configured: len(f.names("/etc/NetworkManager/system-connections")) > 0},
		{name: backendNetworkd,
			// comm is cut to 15 bytes: "systemd-network".
			active:     units["systemd-networkd.service"] || procs["systemd-network"],
			enabled:    wants["systemd-networkd.service"],
			configured: len(f.glob("/etc/systemd/network/*.network"))+len(f.glob("/etc/systemd/network/*.netdev")) > 0},
		{name: backendNetworkScripts,
			active:     units["network.service"] || f.exists("/var/lock/subsys/network"),
			enabled:    wants["network.service"] || sysvEnabled(f, "network"),
			configured: len(ifcfgFiles(f)) > 0},
		{name: backendIfupdown,
			active:     ifupdownUp(f),
			enabled:    wants["networking.service"] || sysvEnabled(f, "networking"),
			configured: ifupdownStanzas(f) > 0},
	}

	backend := "unknown"
	for _, running := range []bool{true, false} {
		if i := slices.IndexFunc(states, func(b backendState) bool { return b.selectable(running) }); i >= 0 {
			backend = states[i].name
			break
		}
	}
	present, active := []any{}, []any{}
	for _, b := range states {
		if b.active || b.enabled || b.configured {
			present = append(present, b.name)
		}
		if b.active && b.name != backendNetplan {
			active = append(active, b.name)
		}
	}
	return map[string]any{
		"backend":          backend,
		"backends_present": present,
		"backends_active":  active,
		"netplan_renderer": renderer,
		// The legacy "network" service comes with the network-scripts package (EL7, EL8).
		// /etc/sysconfig/network-scripts alone proves nothing: EL9 keeps the directory for
		// NetworkManager's ifcfg-rh plugin without the service.
		"network_scripts_available": f.exists("/etc/rc.d/init.d/network") ||
			f.exists("/etc/sysconfig/network-scripts/network-functions"),
	}
}

// activeUnits lists the systemd units that are active now: systemd keeps
// /run/systemd/units/invocation:UNIT while a unit runs and removes it when it stops.
func activeUnits(f rootFS) map[string]bool {
	out := map[string]bool{}
	for _, n := range f.names("/run/systemd/units") {
		if u, ok := strings.CutPrefix(n, "invocation:"); ok {
			out[u] = true
		}
	}
	return out
}

// enabledUnits lists the units that `systemctl enable` linked into a target's .wants
// directory under /etc.
func enabledUnits(f rootFS) map[string]bool {
	out := map[string]bool{}
	for _, p := range f.glob("/etc/systemd/system/*.wants/*") {
		out[path.Base(p)] = true
	}
	return out
}

// sysvEnabled reports a SysV init script started in runlevel 3 or 5 (an S link, which
// systemd's SysV generator also follows) or an OpenRC service in the boot or default
// runlevel.
func sysvEnabled(f rootFS, script string) bool {
	if f.exists("/etc/runlevels/boot/"+script) || f.exists("/etc/runlevels/default/"+script) {
		return true
	}
	for _, dir := range []string{"/etc/rc.d/rc3.d", "/etc/rc.d/rc5.d", "/etc/rc3.d", "/etc/rc5.d"} {
		for _, n := range f.names(dir) {
			if strings.HasPrefix(n, "S") && strings.TrimLeft(n[1:], "0123456789") == script {
				return true
			}
		}
	}
	return false
}

// processNames lists the names (comm) of the running processes in our network namespace
// (PID 1's in a fixture tree). A host's /proc also shows the processes of its containers,
// whose NetworkManager manages the container's interfaces, not the host's.
func processNames(f rootFS) map[string]bool {
	out := map[string]bool{}
	self := "/proc/1/ns/net"
	if f.real {
		self = "/proc/self/ns/net"
	}
	netns, _ := os.Readlink(f.path(self))
	for _, n := range f.names("/proc") {
		if n == "" || strings.Trim(n, "0123456789") != "" {
			continue
		}
		if netns != "" {
			if ns, _ := os.Readlink(f.path("/proc/" + n + "/ns/net")); ns != netns {
				continue
			}
		}
		if c := f.str("/proc/" + n + "/comm"); c != "" {
			out[c] = true
		}
	}
	return out
}

// ifcfgFiles lists the interface files of network-scripts, leaving out the loopback's.
func ifcfgFiles(f rootFS) []string {
	var out []string
	for _, p := range f.glob("/etc/sysconfig/network-scripts/ifcfg-*") {
		if n := path.Base(p); n != "ifcfg-lo" && !strings.HasSuffix(n, ".bak") && !strings.HasSuffix(n, "~") {
			out = append(out, p)
		}
	}
	return out
}

// ifupdownStanzas counts the interfaces other than lo that /etc/network/interfaces (and the
// files it sources from interfaces.d) declares.
func ifupdownStanzas(f rootFS) int {
	files := []string{"/etc/network/interfaces"}
	seen := map[string]bool{}
	count := 0
	for i := 0; i < len(files) && i < 64; i++ {
		text, ok := f.read(files[i])
		if !ok {
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 2 && (fields[0] == "source" || fields[0] == "source-directory") {
				pat := fields[1]
				if fields[0] == "source-directory" {
					pat = strings.TrimSuffix(pat, "/") + "/*"
				}
				if !path.IsAbs(pat) {
					pat = path.Join("/etc/network", pat)
				}
				files = append(files, f.glob(pat)...)
				continue
			}
			if len(fields) < 2 {
				continue
			}
			names := fields[1:]
			switch fields[0] {
			case "iface":
				names = fields[1:2]
			case "auto", "allow-hotplug", "allow-auto":
			default:
				continue
			}
			for _, name := range names {
				if name != "lo" && !seen[name] {
					seen[name] = true
					count++
				}
			}
		}
	}
	return count
}

// ifupdownUp reports interfaces other than lo that ifup brought up: it records them in
// /run/network/ifstate ("eth0=eth0" lines) and, in newer versions, ifstate.IFACE files.
func ifupdownUp(f rootFS) bool {
	for _, line := range strings.Split(f.str("/run/network/ifstate"), "\n") {
		if k, _, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k != "lo" {
			return true
		}
	}
	for _, p := range f.glob("/run/network/ifstate.*") {
		if n := strings.TrimPrefix(path.Base(p), "ifstate."); n != "lo" && f.str(p) != "" {
			return true
		}
	}
	return false
}

// netplanConfig counts the devices the netplan files define and returns the renderer they
// choose ("networkd" unless one says otherwise; "" without netplan files).
func netplanConfig(f rootFS) (int, string) {
	files := append(f.glob("/etc/netplan/*.yaml"), f.glob("/etc/netplan/*.yml")...)
	if len(files) == 0 {
		return 0, ""
	}
	slices.Sort(files)
	devices, renderer := 0, "networkd"
	for _, p := range files {
		var doc struct {
			Network map[string]any `yaml:"network"`
		}
		if err := yaml.Unmarshal([]byte(f.str(p)), &doc); err != nil {
			continue
		}
		for k, v := range doc.Network {
			switch k {
			case "renderer":
				if s, ok := v.(string); ok {
					renderer = s
				}
			case "ethernets", "bonds", "bridges", "vlans", "wifis", "tunnels", "vrfs", "modems",
				"dummy-devices", "virtual-ethernets", "nm-devices":
				if m, ok := v.(map[string]any); ok {
					devices += len(m)
				}
			}
		}
	}
	return devices, renderer
}
