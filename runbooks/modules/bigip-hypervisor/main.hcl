# The BIG-IP VE hypervisor module: prepares a Linux KVM hypervisor to host F5 BIG-IP VE
# guests, following the vendor guide "KVM: Implement BIG-IP NIC bonding": legacy network
# service instead of NetworkManager, no firewalld, SELinux set, iptables flushed and
# stopped, hostname set, an LACP (802.3ad) bond at MTU 9100, SR-IOV VFs in trusted mode, the
# guest's NICs, and checks of drivers, bus info and PCIe link width.
#
# Every step uses its module: firewall, selinux, service, hostname, bond, interface (VLANs),
# sriov, vm_nic, facts for the NIC inventory, and asserts over the host's facts for the
# checks. A play calls it (runbooks/bigip-ve-kvm, runbooks/bigip-ve-sites):
#
#   module "hypervisor" {
#     source = "../modules/bigip-hypervisor"
#     vars   = { mtu = 9100, vlans = { internal = 100 } }
#   }
#
# What is the same for every host it runs on comes in as variables (variables.hcl); what
# differs per host comes from the inventory, read here as host.vars with a default where the
# inventory has none: data_nics ([]: no bond, no VLANs), hostname ("": the host keeps its
# name), sriov_pf ("": no VFs), network_backend (var.network_backend), guest_domain and
# guest_nics. README.md in this folder says what each task does and which step of the guide
# it implements. The calling play sets become (every step needs root).

locals {
  # The service that brings the network up at boot once NetworkManager is off, per backend.
  network_services = {
    "network-scripts"  = "network"
    "ifupdown"         = "networking"
    "systemd-networkd" = "systemd-networkd"
  }
}

# Refuse what cannot work before changing anything on the host: a backend this module
# does not know (an inventory's host.vars.network_backend is not checked like
# var.network_backend), and the guide's path (legacy network service instead of
# NetworkManager), which needs network-scripts, which EL9 and Debian do not ship.
task "network backend possible" {
  tags = ["network", "always"]
  assert {
    that = [
      contains(["network-scripts", "NetworkManager", "ifupdown", "systemd-networkd", "none"], try(host.vars.network_backend, var.network_backend)),
      try(host.vars.network_backend, var.network_backend) != "network-scripts" || facts.network.network_scripts_available,
    ]
    fail_msg = contains(["network-scripts", "NetworkManager", "ifupdown", "systemd-networkd", "none"], try(host.vars.network_backend, var.network_backend)) ? "${host.name}: network_backend is network-scripts, but ${try(facts.os.pretty_name, facts.os.id)} has no legacy network service (network-scripts); keep NetworkManager (network_backend = \"NetworkManager\") or name the backend this host uses (ifupdown, systemd-networkd)" : "${host.name}: network_backend is \"${try(host.vars.network_backend, var.network_backend)}\"; it is network-scripts, NetworkManager, ifupdown, systemd-networkd or none"
  }
}

# The bond is built from the data NICs: every one must be on the host before anything
# changes (a typo would otherwise stop NetworkManager and then fail at the bond).
task "data NICs present" {
  tags = ["network", "bond", "always"]
  when = length(try(host.vars.data_nics, [])) > 0
  assert {
    that     = [for n in try(host.vars.data_nics, []) : contains(keys(facts.nics), n)]
    fail_msg = "${host.name}: data NICs ${join(", ", [for n in try(host.vars.data_nics, []) : n if !contains(keys(facts.nics), n)])} are not on the host; it has ${join(", ", sort(keys(facts.nics)))}"
  }
}

# The guide dedicates the bonded NIC to BIG-IP VE, which "avoids additional SR-IOV VFs
# that appear to function, but do not pass traffic". The PF that carries the VFs is never
# one of the bond's slaves; refused before anything changes.
task "SR-IOV PF not in the bond" {
  tags = ["network", "bond", "sriov", "always"]
  when = try(host.vars.sriov_pf, "") != "" && length(try(host.vars.data_nics, [])) > 0
  assert {
    that     = [!contains(try(host.vars.data_nics, []), try(host.vars.sriov_pf, ""))]
    fail_msg = "${host.name}: sriov_pf ${try(host.vars.sriov_pf, "")} is also a data NIC (data_nics: ${join(", ", try(host.vars.data_nics, []))}): the guide dedicates the bonded NIC to BIG-IP VE, which avoids SR-IOV VFs that appear to function but do not pass traffic; give the VFs a PF outside the bond"
  }
}

# The bond takes its slaves' addresses and links away: a data NIC that carries the
# management path (the SSH session, or the default route when the session cannot be
# followed: facts.management) would cut the controller off. The network modules' guard
# would refuse the bond later; this refuses before anything changes, with the reason. A
# NIC already in this module's bond is not moved, so it passes.
task "data NICs off the management path" {
  tags = ["network", "bond", "always"]
  when = length(try(host.vars.data_nics, [])) > 0
  assert {
    that     = [for n in try(host.vars.data_nics, []) : !contains(try(facts.management.nics, []), n) || try(facts.nics[n].master, "") == var.bond.name]
    fail_msg = "${host.name}: data NICs ${join(", ", [for n in try(host.vars.data_nics, []) : n if contains(try(facts.management.nics, []), n) && try(facts.nics[n].master, "") != var.bond.name])} carry the management path (${join(", ", try(facts.management.nics, []))}, from ${try(facts.management.how, "unknown")}): bonding them would cut this host off; take them out of data_nics or move management to another NIC"
  }
}

# Guide step 1: iptables listed (the task registers the rules it found), flushed, and its
# boot-time service stopped. EL hosts also get the empty ruleset saved in
# /etc/sysconfig/iptables, which the iptables service would otherwise restore at boot;
# elsewhere nothing restores rules unless a service does, and that one is stopped.
# Only the tables in var.iptables_tables are flushed: the guide's "iptables -F" is the filter
# table; flushing nat as well would remove libvirt's NAT rules, which libvirt puts back, so
# every check would report drift. Check mode only reports what would go.
task "iptables flushed" {
  tags = ["firewall"]
  firewall {
    iptables_flush   = true
    tables           = var.iptables_tables
    policies         = { INPUT = "ACCEPT", FORWARD = "ACCEPT", OUTPUT = "ACCEPT" }
    save             = facts.os.family == "redhat"
    iptables_service = "disabled"
  }
}

# Guide step 2: SELinux, in /etc/selinux/config (comments kept) and at runtime where the
# kernel runs it; the result says when only a reboot is left.
task "selinux" {
  tags = ["selinux"]
  selinux {
    state = var.selinux_state
  }
}

# Guide step 3: firewalld off.
task "firewalld off" {
  tags = ["firewall"]
  firewall {
    firewalld = "disabled"
  }
}

# Guide step 4: NetworkManager off and the legacy network service on (network-scripts'
# "network" on EL7/8; the same idea for the other backends). Kept when NetworkManager is
# the chosen backend.
task "NetworkManager off" {
  tags       = ["network"]
  depends_on = ["network backend possible", "data NICs present"]
  when       = !contains(["NetworkManager", "none"], try(host.vars.network_backend, var.network_backend))
  service {
    name    = "NetworkManager"
    state   = "stopped"
    enabled = false
  }
}

task "network service on" {
  tags       = ["network"]
  depends_on = ["NetworkManager off"]
  when       = !contains(["NetworkManager", "none"], try(host.vars.network_backend, var.network_backend))
  service {
    name    = local.network_services[try(host.vars.network_backend, var.network_backend)]
    state   = "started"
    enabled = true
  }
}

# Guide step 5: the hostname (static and running), without needing hostnamectl. Only when
# the inventory gives one (host.vars.hostname); otherwise the host keeps its name and the
# next task says so.
task "hostname" {
  tags = ["system"]
  when = try(host.vars.hostname, "") != ""
  hostname {
    name         = try(host.vars.hostname, "")
    update_hosts = true
  }
}

task "hostname not set" {
  tags = ["system"]
  when = try(host.vars.hostname, "") == ""
  assert {
    that      = [false]
    fail_msg  = "${host.name}: no hostname in the inventory (host.vars.hostname): the hostname task is skipped and the host keeps its name ${try(facts.hostname, "")}"
    warn_only = true
  }
}

# ifupdown makes a bond from its bond-* options only through the ifenslave package's hook
# scripts: without it the bond written below is not there after a reboot, while every check
# before that reboot passes. The other backends bond by themselves.
task "ifenslave present" {
  tags       = ["network", "bond"]
  depends_on = ["network backend possible", "data NICs present"]
  when       = try(host.vars.network_backend, var.network_backend) == "ifupdown" && length(try(host.vars.data_nics, [])) > 0
  package {
    name = "ifenslave"
  }
}

# The LACP bond (802.3ad, mode 4) over the data NICs with MTU 9100 on the bond and its
# slaves: set in the running kernel (netlink) and written for the host's network backend.
task "bond" {
  tags       = ["network", "bond", "mtu"]
  depends_on = ["network backend possible", "data NICs present", "ifenslave present"]
  when       = length(try(host.vars.data_nics, [])) > 0
  bond {
    name             = var.bond.name
    mode             = var.bond.mode
    slaves           = try(host.vars.data_nics, [])
    miimon           = var.bond.miimon
    lacp_rate        = var.bond.lacp_rate
    xmit_hash_policy = var.bond.xmit_hash_policy
    mtu              = tostring(var.mtu)
    backend          = try(host.vars.network_backend, var.network_backend)
    runtime          = var.network_runtime
  }
}

# LACP really negotiated: the bond read again (check only) until every slave is in one
# aggregator with the switch as partner; negotiation takes a few seconds after a change.
task "lacp negotiated" {
  tags         = ["network", "bond", "checks"]
  depends_on   = ["bond"]
  when         = length(try(host.vars.data_nics, [])) > 0 && var.network_runtime && var.bond.mode == "802.3ad"
  check_mode   = true
  changed_when = false
  retries      = 20
  delay        = "1s"
  until        = self.lacp_ok
  bond {
    name    = var.bond.name
    mode    = var.bond.mode
    slaves  = try(host.vars.data_nics, [])
    backend = "none"
  }
}

# VLAN sub-interfaces on the bond, e.g. { internal = 100, external = 200 }. Not the
# guide's: it configures its internal and external VLANs on the trunk inside BIG-IP VE.
task "vlans" {
  tags       = ["network", "vlan"]
  depends_on = ["bond"]
  for_each   = length(try(host.vars.data_nics, [])) > 0 ? var.vlans : {}
  interface {
    name    = "${var.bond.name}.${each.value}"
    vlan    = { parent = var.bond.name, id = each.value }
    mtu     = tostring(var.mtu)
    state   = "up"
    backend = try(host.vars.network_backend, var.network_backend)
    runtime = var.network_runtime
  }
}

# SR-IOV: VFs on the PF, each trusted (and without spoof checking) so the BIG-IP VE guest
# may change its MAC; kept across reboots by a systemd unit.
task "sriov vfs" {
  tags = ["sriov"]
  when = var.sriov_numvfs > 0 && try(host.vars.sriov_pf, "") != ""
  sriov {
    device  = try(host.vars.sriov_pf, "")
    num_vfs = var.sriov_numvfs
    vfs     = [for i in range(var.sriov_numvfs) : { index = i, trust = true, spoofchk = false }]
    runtime = var.network_runtime
    persist = try(host.vars.network_backend, var.network_backend) != "none"
  }
}

# The guest's NICs, in its persistent libvirt definition: host.vars.guest_nics is the
# ordered list vm_nic takes (bridge, direct passthrough, or hostdev VFs with a VLAN).
# Existing NICs keep their MACs; a running guest is told to restart.
task "guest NICs" {
  tags = ["guest"]
  when = try(host.vars.guest_domain, "") != ""
  vm_nic {
    domain     = host.vars.guest_domain
    interfaces = host.vars.guest_nics
  }
}

# Guide step 6 (checks), from the host's facts rather than lshw and ethtool text. The NIC
# inventory is the guide's "lshw -class network -businfo" and "ethtool -i": each NIC's
# driver, driver and firmware versions, bus address, PCIe link and SR-IOV capability, read
# after the changes (the bond, VLANs and VFs are in it). It is this task's result, kept in
# the history, and the NIC table of each host in "runbook report --html FILE".
task "NIC inventory" {
  tags = ["checks"]
  facts {
    gather = ["nics"]
  }
}

# Each data NIC's PCIe link is at least min_pcie_width lanes wide.
task "data NIC PCIe width" {
  tags = ["checks"]
  when = length(try(host.vars.data_nics, [])) > 0
  assert {
    that     = [for n in try(host.vars.data_nics, []) : try(facts.nics[n].pcie.width, var.min_pcie_width) >= var.min_pcie_width]
    fail_msg = "a data NIC sits on a PCIe link narrower than x${var.min_pcie_width}: ${join(", ", [for n in try(host.vars.data_nics, []) : "${n} x${try(facts.nics[n].pcie.width, "?")}"])}"
  }
}

# The guide's figures, x8 about 63 Gbps and x16 about 126 Gbps, are PCIe Gen3's (about
# 7.9 Gbps per lane; the guide names no generation, and the facts compute each link's
# own); a card whose ports' speeds add up to more (two 100G ports on x16 Gen3: 200 > 126)
# cannot run them all at line rate. That is advice, not a
# fault: a warning, unless var.strict_pcie makes it fail the host.
task "PCIe slots not oversubscribed" {
  tags = ["checks"]
  when = length(try(facts.pcie_devices, [])) > 0
  assert {
    that      = [for d in try(facts.pcie_devices, []) : !d.oversubscribed]
    fail_msg  = "${host.name}: ${join("; ", [for d in try(facts.pcie_devices, []) : "card ${d.address} (${join(", ", d.ports)}): its ports add up to ${d.port_speed_total_gbps} Gbps, more than the ${d.slot_bandwidth_gbps} Gbps its PCIe link carries (x${try(facts.nics[d.ports[0]].pcie.width, "?")} Gen${try(facts.nics[d.ports[0]].pcie.generation, "?")})" if d.oversubscribed])}; the guide: an x8 slot achieves about 63 Gbps and x16 about 126 Gbps (Gen3), so spread the ports over cards or expect less than line rate"
    warn_only = !var.strict_pcie
  }
}
