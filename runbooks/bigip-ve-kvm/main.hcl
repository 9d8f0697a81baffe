# Prepares Linux KVM hypervisors to host F5 BIG-IP VE guests, following the vendor guide
# "KVM: Implement BIG-IP NIC bonding". The steps are the bigip-hypervisor module's
# (../modules/bigip-hypervisor): this root calls it once for every host, with this runbook's
# variables (variables.hcl, the same names and defaults as the module's), so `--var mtu=9000`
# and the like set them for the whole run. Per-host values come from the inventory:
# data_nics, hostname, network_backend, sriov_pf, guest_domain, guest_nics. The tasks are
# named "hypervisor.TASK" (hypervisor.bond, hypervisor.firewalld off). README.md in this
# folder says what each task does; ../bigip-ve-sites calls the same module once per site.

play "bigip-ve-hypervisors" {
  hosts  = "all"
  become = true

  module "hypervisor" {
    source = "../modules/bigip-hypervisor"
    vars = {
      selinux_state   = var.selinux_state
      bond            = var.bond
      mtu             = var.mtu
      sriov_numvfs    = var.sriov_numvfs
      min_pcie_width  = var.min_pcie_width
      strict_pcie     = var.strict_pcie
      iptables_tables = var.iptables_tables
      network_backend = var.network_backend
      network_runtime = var.network_runtime
      vlans           = var.vlans
    }
  }
}
