# Local values: names for expressions computed once from variables and other locals.

variable "env" {
  type    = string
  default = "lab"
}

locals {
  prefix   = "rb-${var.env}"
  state    = "/var/lib/${local.prefix}"
  logfiles = [for n in ["run", "audit"] : "${local.state}/${n}.log"]
}

play "locals" {
  hosts = "all"

  task "state dir" {
    file {
      path  = local.state
      state = "directory"
    }
  }

  task "log files" {
    for_each = toset(local.logfiles)
    file {
      path  = each.value
      state = "touch"
    }
  }
}
