host "kvm01" {
  address = "10.0.0.1"
}

host "kvm[01:03]" {       # ERROR: Duplicate host
  port = 22
}

group "web" {
  hosts = ["web1"]
}

group "web" {             # ERROR: Duplicate group
  hosts = ["web2"]
}

host "kvm[9:1]" {         # ERROR: Invalid host range
}

group "bad name" {        # ERROR: Invalid group name
}
