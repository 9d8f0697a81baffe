# Inputs of the two-site BIG-IP VE runbook. Each site is an inventory group; its hosts get
# the site's bond, MTU, VLANs, network backend and VFs. Per-host values (data_nics,
# hostname, sriov_pf, guest_domain, guest_nics) come from the inventory, as for
# ../bigip-ve-kvm: see README.md.

variable "sites" {
  description = "The sites, by inventory group name: each group's hosts get that site's settings. A host in two of these groups is refused."
  type = map(object({
    mtu             = number
    vlans           = optional(map(number), {})
    network_backend = string
    sriov_numvfs    = optional(number, 0)
    bond = optional(object({
      name             = optional(string, "bond0")
      mode             = optional(string, "802.3ad")
      miimon           = optional(number, 100)
      lacp_rate        = optional(string, "fast")
      xmit_hash_policy = optional(string, "layer3+4")
    }), {})
  }))
  default = {
    # An EL9 site on jumbo frames end to end, the guide's bond, NetworkManager kept (EL9
    # has no network-scripts), two VLANs for the guests.
    east = {
      mtu             = 9100
      vlans           = { internal = 100, external = 200 }
      network_backend = "NetworkManager"
    }
    # A Debian site whose switches stop at 9000, with their LACP partners at the slow rate
    # and hashing on layer 2+3, one VLAN, and systemd-networkd.
    west = {
      mtu             = 9000
      vlans           = { internal = 110 }
      network_backend = "systemd-networkd"
      bond = {
        lacp_rate        = "slow"
        xmit_hash_policy = "layer2+3"
      }
    }
  }
  validation {
    condition     = length(var.sites) > 0
    error_message = "sites names at least one site."
  }
  validation {
    # The names make the play's host pattern ("east:west"): a character that means something
    # in a pattern would select other hosts.
    condition     = length([for k in keys(var.sites) : k if length(regexall("^[A-Za-z0-9_.-]+$", k)) == 0]) == 0
    error_message = "A site's name is the name of its inventory group: letters, digits, _, . and -."
  }
}

variable "network_runtime" {
  description = "Also change the running kernel (bond, VLANs, VFs); false writes only the persistent configuration, for hosts whose kernel lacks the driver until a reboot."
  type        = bool
  default     = true
}

variable "strict_pcie" {
  description = "Fail a host whose card's ports can carry more than its PCIe slot instead of warning."
  type        = bool
  default     = false
}
