variable "motd" {
  type        = string
  description = "The message of the day."
}

variable "motd_path" {
  type    = string
  default = "/etc/motd"
}

variable "sysctls" {
  type        = map(string)
  default     = {}
  description = "Kernel parameters to set, by name."
}
