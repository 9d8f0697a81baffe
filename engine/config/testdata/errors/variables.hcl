variable "mtu" {
  type    = number
  default = "jumbo" # ERROR: Invalid default value for variable
}

variable "mtu" { # ERROR: Duplicate variable
  type = number
}

variable "nics" {
  type = lisst(string) # ERROR: Invalid type specification
}

variable "bond_mode" {
  type    = string
  default = "802.3ad"
  validation {
    condition     = var.bond_mode != var.mtu # ERROR: Invalid reference in variable validation
    error_message = "odd"
  }
}

variable "hostname" {
  default = var.bond_mode # ERROR: Variables not allowed
}

variable "1st" { # ERROR: Invalid variable name
  default = 1
}

variable "vlan" {
  type    = number
  default = 5000
  validation {
    condition     = var.vlan >= 1 && var.vlan <= 4094
    error_message = "A VLAN id is between 1 and 4094." # ERROR@-1: Invalid value for variable
  }
}

locals {
  a = local.b
  b = local.a # ERROR: Cycle in local values
}
