# Prepares a Linux KVM hypervisor to host F5 BIG-IP VE guests, following the vendor guide
# "KVM: Implement BIG-IP NIC bonding": legacy network service instead of NetworkManager,
# no firewalld, SELinux set, iptables flushed and stopped, hostname set, an LACP (802.3ad)
# bond at MTU 9100, SR-IOV VFs in trusted mode, the guest's NICs, and checks of drivers,
# bus info and PCIe link width.
#
# Services, SELinux, the firewall, the hostname, the guest's NICs and the checks use their
# own modules; the bond, MTU and SR-IOV steps are still written with the generic modules
# (guarded so that a second run changes nothing) until the network modules replace them.

locals {
  ifcfg_dir = "/etc/sysconfig/network-scripts"
}

play "bigip-ve-hypervisors" {
  hosts  = "all"
  become = true

  vars = {
    data_nics = try(host.vars.data_nics, [])
    hostname  = try(host.vars.hostname, host.name)
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

  # Guide step 4: NetworkManager off, the legacy network service on. EL7/8 ship the legacy
  # service (network-scripts); hosts without it skip the second task, visibly.
  task "NetworkManager off" {
    tags = ["network"]
    service {
      name    = "NetworkManager"
      state   = "stopped"
      enabled = false
    }
  }

  task "network service on" {
    tags       = ["network"]
    depends_on = ["NetworkManager off"]
    when       = facts.network.network_scripts_available
    service {
      name    = "network"
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

  # The LACP bond (802.3ad, mode 4) over the data NICs, at MTU 9100, for the legacy
  # network service (ifcfg files).
  task "network-scripts dir" {
    tags = ["network", "bond"]
    when = length(host.vars.data_nics) > 0
    file {
      path  = local.ifcfg_dir
      state = "directory"
      mode  = "0755"
    }
  }

  task "ifcfg bond" {
    tags   = ["network", "bond"]
    when   = length(host.vars.data_nics) > 0
    notify = ["restart network"]
    copy {
      dest    = "${local.ifcfg_dir}/ifcfg-${var.bond.name}"
      mode    = "0644"
      content = <<-EOT
        DEVICE=${var.bond.name}
        NAME=${var.bond.name}
        TYPE=Bond
        BONDING_MASTER=yes
        BONDING_OPTS="mode=${var.bond.mode} miimon=${var.bond.miimon} lacp_rate=${var.bond.lacp_rate} xmit_hash_policy=${var.bond.xmit_hash_policy}"
        MTU=${var.mtu}
        BOOTPROTO=none
        ONBOOT=yes
      EOT
    }
  }

  task "ifcfg bond slaves" {
    tags     = ["network", "bond"]
    for_each = toset(host.vars.data_nics)
    notify   = ["restart network"]
    copy {
      dest    = "${local.ifcfg_dir}/ifcfg-${each.value}"
      mode    = "0644"
      content = <<-EOT
        DEVICE=${each.value}
        NAME=${each.value}
        TYPE=Ethernet
        MASTER=${var.bond.name}
        SLAVE=yes
        MTU=${var.mtu}
        BOOTPROTO=none
        ONBOOT=yes
      EOT
    }
  }

  # Guide step 6: MTU 9100 on the data NICs now, without waiting for a network restart.
  task "data NIC MTU" {
    tags     = ["network", "mtu"]
    for_each = toset(host.vars.data_nics)
    command {
      argv   = ["ip", "link", "set", "dev", each.value, "mtu", tostring(var.mtu)]
      unless = "[ \"$(cat /sys/class/net/${each.value}/mtu)\" = ${var.mtu} ]"
    }
  }

  # SR-IOV: VFs on the PF, each trusted so the BIG-IP VE guest may change its MAC.
  task "sriov vfs" {
    tags = ["sriov"]
    when = var.sriov_numvfs > 0 && try(host.vars.sriov_pf, "") != ""
    shell {
      cmd    = "echo 0 > /sys/class/net/${host.vars.sriov_pf}/device/sriov_numvfs && echo ${var.sriov_numvfs} > /sys/class/net/${host.vars.sriov_pf}/device/sriov_numvfs"
      unless = "[ \"$(cat /sys/class/net/${host.vars.sriov_pf}/device/sriov_numvfs)\" = ${var.sriov_numvfs} ]"
    }
  }

  task "sriov vfs trusted" {
    tags       = ["sriov"]
    depends_on = ["sriov vfs"]
    when       = var.sriov_numvfs > 0 && try(host.vars.sriov_pf, "") != ""
    for_each   = range(var.sriov_numvfs)
    command {
      argv   = ["ip", "link", "set", "dev", host.vars.sriov_pf, "vf", tostring(each.value), "trust", "on", "spoofchk", "off"]
      unless = "ip -d link show dev ${host.vars.sriov_pf} | grep -E '^ +vf ${each.value} .*trust on'"
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

  handler "restart network" {
    when = facts.network.network_scripts_available
    service {
      name  = "network"
      state = "restarted"
    }
  }
}
