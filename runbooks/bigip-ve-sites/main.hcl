# Prepares the BIG-IP VE hypervisors of several sites with one runbook: the same
# bigip-hypervisor module as ../bigip-ve-kvm, called once per site (for_each over
# var.sites), each call with its own MTU, VLANs, bond settings, network backend and VFs. A
# site is an inventory group of the same name; a host runs its own site's call, and the
# other sites' tasks are reported skipped for it. Tasks are named site["east"].bond,
# site["west"].bond, ... README.md in this folder says how to add a site.

play "bigip-ve-sites" {
  # Only the sites' hosts: "east:west".
  hosts  = join(":", keys(var.sites))
  become = true

  # A host in two site groups would get both sites' bonds, one after the other: refused
  # before anything changes.
  task "one site per host" {
    tags = ["always"]
    assert {
      that     = [length([for s in keys(var.sites) : s if contains(host.groups, s)]) == 1]
      fail_msg = "${host.name} is in the groups of sites ${join(" and ", [for s in keys(var.sites) : s if contains(host.groups, s)])}: a host belongs to one site"
    }
  }

  module "site" {
    source   = "../modules/bigip-hypervisor"
    for_each = var.sites
    when     = contains(host.groups, each.key)
    vars = {
      mtu             = each.value.mtu
      vlans           = each.value.vlans
      bond            = each.value.bond
      network_backend = each.value.network_backend
      sriov_numvfs    = each.value.sriov_numvfs
      network_runtime = var.network_runtime
      strict_pcie     = var.strict_pcie
    }
  }
}
