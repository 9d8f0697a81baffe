# Prepares a Linux KVM hypervisor to host F5 BIG-IP VE guests, following the vendor guide
# "KVM: Implement BIG-IP NIC bonding": legacy network service instead of NetworkManager,
# no firewalld, SELinux set, iptables flushed and stopped, hostname set, an LACP (802.3ad)
# bond at MTU 9100, SR-IOV VFs in trusted mode, the guest's NICs, and checks of drivers,
# bus info and PCIe link width.
#
# Every step uses its module: firewall, selinux, service, hostname, bond, interface (VLANs),
# sriov, vm_nic, and asserts over the host's facts for the checks. Per-host values come from
# the inventory: data_nics, hostname, network_backend, sriov_pf, guest_domain, guest_nics.

locals {
  # The service that brings the network up at boot once NetworkManager is off, per backend.
  network_services = {
    "network-scripts"  = "network"
    "ifupdown"         = "networking"
    "systemd-networkd" = "systemd-networkd"
  }
}

play "bigip-ve-hypervisors" {
  hosts  = "all"
  become = true

  vars = {
    data_nics       = try(host.vars.data_nics, [])
    hostname        = try(host.vars.hostname, host.name)
    network_backend = try(host.vars.network_backend, var.network_backend)
  }

  # Refuse what cannot work before changing anything on the host: a backend this runbook
  # does not know (an inventory's host.vars.network_backend is not checked like
  # var.network_backend), and the guide's path (legacy network service instead of
  # NetworkManager), which needs network-scripts, which EL9 and Debian do not ship.
  task "network backend possible" {
    tags = ["network", "always"]
    assert {
      that = [
        contains(["network-scripts", "NetworkManager", "ifupdown", "systemd-networkd", "none"], host.vars.network_backend),
        host.vars.network_backend != "network-scripts" || facts.network.network_scripts_available,
      ]
      fail_msg = contains(["network-scripts", "NetworkManager", "ifupdown", "systemd-networkd", "none"], host.vars.network_backend) ? "${host.name}: network_backend is network-scripts, but ${try(facts.os.pretty_name, facts.os.id)} has no legacy network service (network-scripts); keep NetworkManager (network_backend = \"NetworkManager\") or name the backend this host uses (ifupdown, systemd-networkd)" : "${host.name}: network_backend is \"${host.vars.network_backend}\"; it is network-scripts, NetworkManager, ifupdown, systemd-networkd or none"
    }
  }

  # The bond is built from the data NICs: every one must be on the host before anything
  # changes (a typo would otherwise stop NetworkManager and then fail at the bond).
  task "data NICs present" {
    tags = ["network", "bond", "always"]
    when = length(host.vars.data_nics) > 0
    assert {
      that     = [for n in host.vars.data_nics : contains(keys(facts.nics), n)]
      fail_msg = "${host.name}: data NICs ${join(", ", [for n in host.vars.data_nics : n if !contains(keys(facts.nics), n)])} are not on the host; it has ${join(", ", sort(keys(facts.nics)))}"
    }
  }

  # Guide step 1: iptables listed (the task registers the rules it found), flushed, and its
  # boot-time service stopped. EL hosts also get the empty ruleset saved in
  # /etc/sysconfig/iptables, which the iptables service would otherwise restore at boot;
  # elsewhere nothing restores rules unless a service does, and that one is stopped.
  # Check mode only reports what would go.
  task "iptables flushed" {
    tags = ["firewall"]
    firewall {
      iptables_flush   = true
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
    when       = !contains(["NetworkManager", "none"], host.vars.network_backend)
    service {
      name    = "NetworkManager"
      state   = "stopped"
      enabled = false
    }
  }

  task "network service on" {
    tags       = ["network"]
    depends_on = ["NetworkManager off"]
    when       = !contains(["NetworkManager", "none"], host.vars.network_backend)
    service {
      name    = local.network_services[host.vars.network_backend]
      state   = "started"
      enabled = true
    }
  }

  # Guide step 5: the hostname (static and running), without needing hostnamectl.
  task "hostname" {
    tags = ["system"]
    hostname {
      name         = host.vars.hostname
      update_hosts = true
    }
  }

  # The LACP bond (802.3ad, mode 4) over the data NICs with MTU 9100 on the bond and its
  # slaves: set in the running kernel (netlink) and written for the host's network backend.
  task "bond" {
    tags       = ["network", "bond", "mtu"]
    depends_on = ["network backend possible", "data NICs present"]
    when       = length(host.vars.data_nics) > 0
    bond {
      name             = var.bond.name
      mode             = var.bond.mode
      slaves           = host.vars.data_nics
      miimon           = var.bond.miimon
      lacp_rate        = var.bond.lacp_rate
      xmit_hash_policy = var.bond.xmit_hash_policy
      mtu              = tostring(var.mtu)
      backend          = host.vars.network_backend
      runtime          = var.network_runtime
    }
  }

  # LACP really negotiated: the bond read again (check only) until every slave is in one
  # aggregator with the switch as partner; negotiation takes a few seconds after a change.
  task "lacp negotiated" {
    tags         = ["network", "bond", "checks"]
    depends_on   = ["bond"]
    when         = length(host.vars.data_nics) > 0 && var.network_runtime && var.bond.mode == "802.3ad"
    check_mode   = true
    changed_when = false
    retries      = 20
    delay        = "1s"
    until        = self.lacp_ok
    bond {
      name    = var.bond.name
      mode    = var.bond.mode
      slaves  = host.vars.data_nics
      backend = "none"
    }
  }

  # VLAN sub-interfaces on the bond, e.g. { internal = 100, external = 200 }.
  task "vlans" {
    tags       = ["network", "vlan"]
    depends_on = ["bond"]
    for_each   = length(host.vars.data_nics) > 0 ? var.vlans : {}
    interface {
      name    = "${var.bond.name}.${each.value}"
      vlan    = { parent = var.bond.name, id = each.value }
      mtu     = tostring(var.mtu)
      state   = "up"
      backend = host.vars.network_backend
      runtime = var.network_runtime
    }
  }

  # SR-IOV: VFs on the PF, each trusted (and without spoof checking) so the BIG-IP VE guest
  # may change its MAC; kept across reboots by a systemd unit.
  task "sriov vfs" {
    tags = ["sriov"]
    when = var.sriov_numvfs > 0 && try(host.vars.sriov_pf, "") != ""
    sriov {
      device  = host.vars.sriov_pf
      num_vfs = var.sriov_numvfs
      vfs     = [for i in range(var.sriov_numvfs) : { index = i, trust = true, spoofchk = false }]
      runtime = var.network_runtime
      persist = host.vars.network_backend != "none"
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

  # Guide step 6 (checks), from the host's facts rather than lshw and ethtool text: each data
  # NIC is there, its driver and bus info are reported, its PCIe link is at least
  # min_pcie_width lanes wide, and no card carries more than its slot can (x8 ≈ 63 Gbps).
  task "data NICs" {
    tags = ["checks"]
    when = length(host.vars.data_nics) > 0
    assert {
      that        = [for n in host.vars.data_nics : contains(keys(facts.nics), n)]
      fail_msg    = "a data NIC in host.vars.data_nics is not on the host: it has ${join(", ", sort(keys(facts.nics)))}"
      success_msg = join("; ", [for n in host.vars.data_nics : "${n}: driver ${facts.nics[n].driver}, bus ${facts.nics[n].bus_info == "" ? "none" : facts.nics[n].bus_info}, mtu ${facts.nics[n].mtu}" if contains(keys(facts.nics), n)])
    }
  }

  task "data NIC PCIe width" {
    tags       = ["checks"]
    depends_on = ["data NICs"]
    when       = length(host.vars.data_nics) > 0
    assert {
      that     = [for n in host.vars.data_nics : try(facts.nics[n].pcie.width, var.min_pcie_width) >= var.min_pcie_width]
      fail_msg = "a data NIC sits on a PCIe link narrower than x${var.min_pcie_width}: ${join(", ", [for n in host.vars.data_nics : "${n} x${try(facts.nics[n].pcie.width, "?")}"])}"
    }
  }

  task "PCIe slots not oversubscribed" {
    tags = ["checks"]
    when = length(try(facts.pcie_devices, [])) > 0
    assert {
      that     = [for d in try(facts.pcie_devices, []) : !d.oversubscribed]
      fail_msg = "these cards' ports can carry more than their PCIe slot: ${join(", ", [for d in try(facts.pcie_devices, []) : "${d.address} (${d.port_speed_total_gbps} Gbps on a ${d.slot_bandwidth_gbps} Gbps link)" if d.oversubscribed])}"
    }
  }
}
