# Inputs of the BIG-IP VE hypervisor runbook, passed as they are to the bigip-hypervisor
# module, whose variables.hcl validates them (an invalid --var is an error at the call in
# main.hcl, before any host is touched). Names, types and defaults are the module's.
# Per-host values (which NICs to bond, which PF carries the VFs, the guest's name) come from
# the inventory: see README.md.

variable "selinux_state" {
  description = "SELinux mode the guide asks for: the guide disables it; permissive keeps the logs."
  type        = string
  default     = "disabled"
}

variable "bond" {
  description = "The LACP bond built from each host's data NICs (host.vars.data_nics)."
  type = object({
    name             = string
    mode             = string
    miimon           = number
    lacp_rate        = string
    xmit_hash_policy = string
  })
  default = {
    name             = "bond0"
    mode             = "802.3ad"
    miimon           = 100
    lacp_rate        = "fast"
    xmit_hash_policy = "layer3+4"
  }
}

variable "mtu" {
  description = "MTU for the bond and its slaves (jumbo frames end to end)."
  type        = number
  default     = 9100
}

variable "sriov_numvfs" {
  description = "Virtual functions to create on each host's SR-IOV PF (host.vars.sriov_pf); 0 skips SR-IOV."
  type        = number
  default     = 0
}

variable "min_pcie_width" {
  description = "Narrowest PCIe link a data NIC may sit on (the guide: x8 carries about 63 Gbps, x16 about 126 Gbps)."
  type        = number
  default     = 8
}

variable "strict_pcie" {
  description = "Fail a host whose card's ports can carry more than its PCIe slot (x8 Gen3 about 63 Gbps, x16 about 126 Gbps) instead of warning."
  type        = bool
  default     = false
}

variable "iptables_tables" {
  description = "The iptables tables the flush empties: the guide's iptables -F is the filter table; nat would take libvirt's NAT rules, which libvirt restores (drift on every check)."
  type        = list(string)
  default     = ["filter"]
}

variable "network_backend" {
  description = "Where the bond and VLANs are made persistent, unless host.vars.network_backend says otherwise: the guide's network-scripts (legacy network service), NetworkManager, ifupdown, systemd-networkd, or none (running kernel only; the network services are left alone)."
  type        = string
  default     = "network-scripts"
}

variable "network_runtime" {
  description = "Also change the running kernel (bond, VLANs, VFs); false writes only the persistent configuration, for hosts whose kernel lacks the driver until a reboot."
  type        = bool
  default     = true
}

variable "vlans" {
  description = "VLAN sub-interfaces to make on the bond, by name: { internal = 100, external = 200 }."
  type        = map(number)
  default     = {}
}
