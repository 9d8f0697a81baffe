# Input variables: types, defaults, validation and sensitive values.
# Set them with --var NAME=VALUE, --var-file FILE.hcl or RUNBOOK_VAR_NAME in the environment.

variable "motd" {
  description = "Message of the day."
  type        = string
  default     = "Authorised use only."
}

variable "ntp_servers" {
  type    = list(string)
  default = ["127.0.0.1"]
  validation {
    condition     = length(var.ntp_servers) > 0
    error_message = "Give at least one NTP server."
  }
}

variable "api_token" {
  description = "Never shown in output, diffs or reports."
  type        = string
  sensitive   = true
  default     = "change-me"
}

play "variables" {
  hosts = "all"

  task "motd" {
    copy {
      dest    = "/etc/motd"
      content = "${var.motd}\n"
    }
  }

  task "chrony servers" {
    copy {
      dest    = "/etc/chrony/sources.d/runbook.sources"
      content = join("", [for s in var.ntp_servers : "server ${s} iburst\n"])
    }
  }

  task "api token" {
    copy {
      dest    = "/etc/example/token"
      content = var.api_token
      mode    = "0600"
    }
  }
}
