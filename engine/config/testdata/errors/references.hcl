variable "mtu" {
  type    = number
  default = 9100
}

locals {
  nics = ["ens1f0", "ens1f1"]
}

play "refs" {
  hosts = "all"

  task "undeclared var" {
    command {
      argv = ["ip", "link", "set", "bond0", "mtu", var.mut] # ERROR: Reference to undeclared input variable
    }
  }

  task "undeclared local" {
    command {
      argv = local.nic # ERROR: Reference to undeclared local value
    }
  }

  task "unknown root" {
    when = hots.name == "kvm01" # ERROR: Unknown variable
    command {
      cmd = "true"
    }
  }

  task "each outside for_each" {
    command {
      cmd = "echo ${each.value}" # ERROR: Invalid reference
    }
  }

  task "host in static argument" {
    tags = [host.name] # ERROR: Invalid reference
    command {
      cmd = "true"
    }
  }

  task "result of a later task" {
    when = task["later"].rc == 0 # ERROR: Reference to a task that has not run yet
    command {
      cmd = "true"
    }
  }

  task "result of no task" {
    when = task["nope"].rc == 0 # ERROR: Reference to undeclared task
    command {
      cmd = "true"
    }
  }

  task "later" {
    command {
      cmd = "true"
    }
  }

  task "host attribute typo" {
    command {
      cmd = "echo ${host.nmae}" # ERROR: Invalid reference
    }
  }
}
