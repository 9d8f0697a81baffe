host "kvm01" {
  user     = "root"
  adress   = "10.0.0.2"   # ERROR: Unsupported argument
  port     = "ssh"        # ERROR: Invalid port
}

host "kvm02" {
  port = 70000            # ERROR: Invalid port
  user = ["root"]         # ERROR: Invalid value
  vars = "rack=b"         # ERROR: Invalid vars
}

host "kvm03" {
  address = "10.0.0.3"    # ERROR: Conflicting host settings
  vars = {
    ansible_host = "10.9.9.9"
  }
}

hosts "kvm04" {           # ERROR: Unsupported block type
}

group "web" {
  hosts    = "web1"       # ERROR: Invalid hosts
  children = ["db", 5]    # ERROR: Invalid children
}

group "db" {
  hosts = [var.x]         # ERROR: Variables not allowed
}
