package facts

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

func init() {
	// The facts are open-ended (a NIC's keys, the os object): the result is the map
	// Gather returns, converted to Returns' types when it is registered.
	modules.Register[factsArgs, map[string]any](Facts{})
}

// Facts is the facts module: it gathers and registers the host's facts.
type Facts struct{}

// OpenData: the facts are nested maps whose keys the host decides.
func (Facts) OpenData() {}

// factsArgs are the facts module's arguments.
type factsArgs struct {
	// Gather is nil (or empty) to read every subset.
	Gather []string `cty:"gather"`
}

var (
	_ modules.Runner[factsArgs]    = Facts{}
	_ modules.Validator[factsArgs] = Facts{}
)

// Returns documents every key Gather produces; it is also the reference for facts.* in
// runbook expressions.
var Returns = []modules.Field{
	{Name: "os", Type: cty.DynamicPseudoType, Doc: `From /etc/os-release: id ("rhel", "rocky", "debian", ...), id_like (list),
version_id ("8.9"), version_major (number, null when VERSION_ID has none), name, pretty_name, and family:
"redhat" (rhel, centos, rocky, almalinux, fedora, ol and their ID_LIKE kin), "debian" (debian, ubuntu), "suse",
otherwise the id. Subset "os".`},
	{Name: "kernel", Type: cty.String, Doc: `Kernel release, as uname -r prints it. Subset "os".`},
	{Name: "arch", Type: cty.String, Doc: `Machine architecture, as uname -m prints it ("x86_64", "aarch64"). Subset "os".`},
	{Name: "hostname", Type: cty.String, Doc: `The kernel's host name. Subset "os".`},
	{Name: "init", Type: cty.String, Doc: `The service manager: "systemd" (/run/systemd/system exists), "sysv", "openrc", "upstart" or
"unknown" (from PID 1's name and each init's files). Subset "init".`},
	{Name: "selinux", Type: cty.Object(map[string]cty.Type{"available": cty.Bool, "runtime": cty.String, "persistent": cty.String, "policy": cty.String}),
		Doc: `available: selinuxfs is mounted; runtime: "enforcing", "permissive", "disabled" (the kernel has SELinux but
does not run it) or "not available" (the kernel has no SELinux), as the selinux module reports it; persistent:
SELINUX= of /etc/selinux/config ("" without it); policy: SELINUXTYPE=. Subset "selinux".`},
	{Name: "network", Type: cty.DynamicPseudoType, Doc: `backend: the stack that manages the interfaces, decided from files
("netplan" when its files define devices; else the first running of "NetworkManager", "systemd-networkd",
"network-scripts" (legacy network service with ifcfg files), "ifupdown"; else the first enabled at boot; else
"unknown"); backends_present: every stack with a running service, a boot link or configuration of its own;
backends_active: the running ones; netplan_renderer: "networkd" or "NetworkManager" ("" without netplan);
network_scripts_available: the legacy network service is installed (/etc/rc.d/init.d/network), false on EL9.
Subset "network".`},
	{Name: "nics", Type: cty.DynamicPseudoType, Doc: `Interfaces by name from /sys/class/net, lo left out. Each has: mac, mtu,
operstate, link (carrier), speed_mbps (null when unknown or down), duplex, driver, driver_version,
firmware_version (ethtool's driver info; the module's sysfs version when that is not available), bus_info (as
ethtool -i and lshw -businfo show it, e.g. "0000:3b:00.0"; a virtio NIC reports its virtio-pci function;
"" for software interfaces), pci_address, vendor_id and device_id ("8086", "158b"), numa_node, virtual,
kind ("ether", "bond", "bridge", "vlan", "veth", "macvlan", ...), master (the bond or bridge it is enslaved to,
or ""), sriov_capable (the PCI function offers VFs: sriov_totalvfs above 0), sriov_total_vfs and
sriov_num_vfs (null without SR-IOV), sriov_pf_address (the PF of a VF, else ""),
pcie (null without a PCIe link; else width, max_width, speed_gts, max_speed_gts, generation, bandwidth_gbps,
max_bandwidth_gbps, degraded), pcie_oversubscribed, bond (for a bond: mode, slaves, active_slave, mii_status,
miimon, lacp_rate, xmit_hash_policy, ad_aggregator, ad_num_ports, ad_partner_mac), bond_slave (for a bond
port: state, mii_status, link_failure_count, perm_hwaddr, ad_aggregator_id, in_active_aggregator), and
bridge_ports (for a bridge). PCIe bandwidth is lanes × per-lane rate after line encoding: 2.0 and 4.0
Gbit/s for 2.5 and 5 GT/s (8b/10b), 7.877, 15.754, 31.508 for 8, 16, 32 GT/s (128b/130b), 60.5 for 64 GT/s
(FLIT), so x8 Gen3 is 63.0 and x16 Gen3 126.0. Subset "nics".`},
	{Name: "pcie_devices", Type: cty.DynamicPseudoType, Doc: `One entry per PCI device (domain:bus:device) with network ports:
address ("0000:3b:00"), ports (interface names), port_speed_total_gbps (the ports' current link speeds
added up), slot_bandwidth_gbps, and oversubscribed (the ports can carry more than the PCIe link: the
tuning guides' advice to spread such ports over cards). Subset "nics".`},
	{Name: "management", Type: cty.DynamicPseudoType, Doc: `The interfaces that carry the management path: nics (sorted names)
is the interface holding the local address of the SSH session the facts are gathered under and every
interface below it (a bond's slaves, a VLAN's parent, a bridge's ports, through the kernel's lower_* links);
when the session is not found, runs over loopback or uses an address no interface holds, the interfaces of
the default routes (IPv4 and IPv6) and those below them. how says which of the two it is, and why. The
network modules' management-path guard stays the safety net (it also follows routes and tunnels); this
lets a runbook refuse early and clearly. Subset "nics".`},
}

func (Facts) Info() modules.Info {
	return modules.Info{
		Name:    "facts",
		Family:  "facts",
		Summary: "Gather the host's facts: OS, init system, SELinux, network backend, NICs and their PCIe slots.",
		Description: `Reads what the host is from files and the kernel, never from tools' text: /etc/os-release,
/proc, /run/systemd, /etc/selinux/config and selinuxfs, the network stacks' files, /sys/class/net (link,
driver, bonding, SR-IOV, PCIe link width and speed) and the kernel's ethtool driver info. It changes
nothing, so check and apply do the same and the task is always ok. Register the result to use it:
task.<name>.nics.ens1f0.pcie.bandwidth_gbps. The same values are what facts.* holds in expressions.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "gather", Type: cty.List(cty.String),
					Doc: `Subsets to read: "os", "init", "selinux", "network", "nics". Unset or empty reads all.`},
			},
		},
		Returns: Returns,
		Examples: []modules.Example{
			{Title: "Read only the NICs and their PCIe slots; later tasks use task.nic_facts.nics", HCL: `task "nic_facts" {
  facts {
    gather = ["nics"]
  }
}`},
			{Title: "Everything", HCL: `task "facts" {
  facts {}
}`},
		},
	}
}

// Validate checks the subset names before any host is touched.
func (Facts) Validate(args factsArgs) []modules.ArgError {
	var errs []modules.ArgError
	for _, s := range args.Gather {
		if !slices.Contains(Subsets, s) {
			msg := fmt.Sprintf("unknown subset %q; known: %s.", s, strings.Join(Subsets, ", "))
			if sug := modules.Suggest(s, Subsets); sug != "" {
				msg = fmt.Sprintf("unknown subset %q; did you mean %q?", s, sug)
			}
			errs = append(errs, modules.ArgError{Arg: "gather", Msg: msg})
		}
	}
	return errs
}

// Run gathers the facts; apply makes no difference.
func (Facts) Run(ctx context.Context, env *modules.Env, args factsArgs, apply bool) (*modules.Result, error) {
	data, err := Gather(ctx, Options{Subsets: args.Gather})
	if err != nil {
		return nil, err
	}
	return &modules.Result{Status: modules.StatusOK, Data: data, Msg: summary(data)}, nil
}

// summary is one line about what was gathered: "debian 12, systemd, NetworkManager, 3 NICs".
func summary(data map[string]any) string {
	var parts []string
	if o, ok := data["os"].(map[string]any); ok {
		parts = append(parts, strings.TrimSpace(fmt.Sprint(o["id"], " ", o["version_id"])))
	}
	if s, ok := data["init"].(string); ok {
		parts = append(parts, s)
	}
	if s, ok := data["selinux"].(map[string]any); ok {
		parts = append(parts, fmt.Sprint("selinux ", s["runtime"]))
	}
	if n, ok := data["network"].(map[string]any); ok {
		parts = append(parts, fmt.Sprint(n["backend"]))
	}
	if n, ok := data["nics"].(map[string]any); ok {
		names := make([]string, 0, len(n))
		for k := range n {
			names = append(names, k)
		}
		sort.Strings(names)
		parts = append(parts, fmt.Sprintf("%d NICs (%s)", len(n), strings.Join(names, " ")))
	}
	return strings.Join(parts, ", ")
}
