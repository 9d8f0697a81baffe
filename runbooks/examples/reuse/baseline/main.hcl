task "motd" {
  copy {
    dest    = var.motd_path
    content = "${var.motd}\n"
  }
}

task "sysctls" {
  for_each = var.sysctls
  sysctl {
    name  = each.key
    value = each.value
  }
  notify = ["log"]
}

handler "log" {
  command { argv = ["logger", "-t", "runbook", "kernel parameters changed"] }
}

output "motd_path" {
  value = var.motd_path
}
