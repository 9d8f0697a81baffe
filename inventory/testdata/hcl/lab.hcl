# The HCL inventory of the documentation, read by TestHCLInventory.
host "kvm01" {
  address       = "127.0.0.1"
  port          = 2201
  user          = "root"
  identity_file = "~/.ssh/id"
  jump          = "bastion"
  vars = {
    data_nics = ["ens1f0", "ens1f1"]
    ratio     = 1.5
    nested    = { a = 1, b = [true, null] }
  }
}

host "kvm[02:04]" {
  vars = { rack = "b" }
}

host "edge-[a:b]" {}

group "kvm" {
  hosts    = ["kvm[01:04]", "kvm[08:12:2]"]
  children = ["edge"]
  vars     = { bond_mtu = 9100, rack = "a" }
}

group "edge" {
  hosts = ["edge-a"]
  vars  = { ansible_group_priority = 5, role = "edge" }
}

group "all" {
  vars = { ntp = "pool", rack = "none" }
}
