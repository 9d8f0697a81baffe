# Prepares a Linux KVM hypervisor to host F5 BIG-IP VE guests, following the vendor guide
# "KVM: Implement BIG-IP NIC bonding": legacy network service instead of NetworkManager,
# no firewalld, SELinux set, iptables flushed and stopped, hostname set, an LACP (802.3ad)
# bond at MTU 9100, SR-IOV VFs in trusted mode, the guest's NICs, and checks of drivers,
# bus info and PCIe link width.
#
# Today every step is written with the generic modules (shell/command guarded so that a
# second run changes nothing); the dedicated service, selinux, firewall, hostname, bond,
# sriov, vm_nic and facts modules replace them as they land.

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

  # Guide step 1: look at the iptables rules before anything changes them.
  task "list iptables rules" {
    tags         = ["firewall", "checks"]
    check_mode   = false # read-only: also runs in check mode
    changed_when = false
    command {
      argv     = ["sh", "-c", "command -v iptables >/dev/null || exit 0; iptables -L -n -v"]
      ok_codes = [0]
    }
  }

  task "flush iptables" {
    tags = ["firewall"]
    shell {
      cmd    = "for t in filter nat mangle raw; do iptables -t $t -F && iptables -t $t -X; done"
      unless = "! command -v iptables >/dev/null || [ \"$(iptables-save | grep -c '^-A')\" = 0 ]"
    }
  }

  task "stop iptables service" {
    tags = ["firewall"]
    shell {
      cmd    = "systemctl disable --now iptables"
      unless = "! systemctl cat iptables >/dev/null 2>&1 || { ! systemctl is-enabled --quiet iptables && ! systemctl is-active --quiet iptables; }"
    }
  }

  # Guide step 2: SELinux, persistently (takes full effect at the next boot) and at runtime.
  task "selinux config" {
    tags = ["selinux"]
    when = var.selinux_state != ""
    line {
      path   = "/etc/selinux/config"
      regexp = "^SELINUX="
      line   = "SELINUX=${var.selinux_state}"
      create = true
      mode   = "0644"
    }
  }

  task "selinux runtime" {
    tags = ["selinux"]
    shell {
      cmd    = "setenforce ${var.selinux_state == "enforcing" ? 1 : 0}"
      unless = "! command -v getenforce >/dev/null || [ \"$(getenforce)\" = Disabled ] || [ \"$(getenforce | tr A-Z a-z)\" = ${var.selinux_state == "disabled" ? "permissive" : var.selinux_state} ]"
    }
  }

  # Guide step 3: firewalld off.
  task "firewalld off" {
    tags = ["firewall"]
    shell {
      cmd    = "systemctl disable --now firewalld"
      unless = "! systemctl cat firewalld >/dev/null 2>&1 || { ! systemctl is-enabled --quiet firewalld && ! systemctl is-active --quiet firewalld; }"
    }
  }

  # Guide step 4: NetworkManager off, the legacy network service on.
  task "NetworkManager off" {
    tags = ["network"]
    shell {
      cmd    = "systemctl disable --now NetworkManager"
      unless = "! systemctl cat NetworkManager >/dev/null 2>&1 || { ! systemctl is-enabled --quiet NetworkManager && ! systemctl is-active --quiet NetworkManager; }"
    }
  }

  # EL7/8 ship the legacy network service (network-scripts); hosts without it skip the
  # next task, visibly.
  task "legacy network unit" {
    tags         = ["network"]
    check_mode   = false
    changed_when = false
    failed_when  = false
    command {
      argv = ["systemctl", "cat", "network.service"]
    }
  }

  task "network service on" {
    tags       = ["network"]
    depends_on = ["NetworkManager off", "legacy network unit"]
    when       = task["legacy network unit"].rc == 0
    shell {
      cmd    = "systemctl enable network && systemctl start network"
      unless = "systemctl is-enabled --quiet network && systemctl is-active --quiet network"
    }
  }

  # Guide step 5: the hostname.
  task "hostname" {
    tags = ["system"]
    shell {
      cmd    = "hostnamectl set-hostname ${host.vars.hostname}"
      unless = "[ \"$(hostname)\" = ${host.vars.hostname} ]"
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

  # The guest's NICs: one virtio NIC on the bond's bridge per entry of host.vars.guest_nics,
  # added to the guest's persistent (inactive) definition.
  task "guest NICs" {
    tags     = ["guest"]
    for_each = try(host.vars.guest_nics, {})
    when     = try(host.vars.guest_domain, "") != ""
    shell {
      cmd    = "printf '<interface type=\"bridge\"><source bridge=\"%s\"/><mac address=\"%s\"/><model type=\"virtio\"/><mtu size=\"${var.mtu}\"/></interface>' ${each.value.bridge} ${each.value.mac} > /run/runbook-nic.xml && virsh attach-device ${host.vars.guest_domain} /run/runbook-nic.xml --config"
      unless = "virsh dumpxml --inactive ${host.vars.guest_domain} | grep -qi \"${each.value.mac}\""
    }
  }

  # Guide step 6 (checks): drivers, bus info, PCIe link width of each data NIC.
  task "data NIC drivers" {
    tags         = ["checks"]
    for_each     = toset(host.vars.data_nics)
    check_mode   = false
    changed_when = false
    shell {
      cmd = "if command -v ethtool >/dev/null; then ethtool -i ${each.value} | sed -n 's/^driver: //p'; else d=$(readlink /sys/class/net/${each.value}/device/driver); echo \"$${d##*/}\"; fi"
    }
  }

  task "data NIC PCIe width" {
    tags         = ["checks"]
    for_each     = toset(host.vars.data_nics)
    check_mode   = false
    changed_when = false
    shell {
      cmd = "f=/sys/class/net/${each.value}/device/current_link_width; if [ -r $f ]; then cat $f; else echo none; fi"
    }
  }

  handler "restart network" {
    when = task["legacy network unit"].rc == 0
    shell {
      cmd = "systemctl restart network"
    }
  }
}
