# for_each: one task, run once per element of a list, set or map (each.key, each.value).

play "loops" {
  hosts = "all"

  task "directories" {
    for_each = toset(["/srv/a", "/srv/b"])
    file {
      path  = each.value
      state = "directory"
    }
  }

  task "sysctl drop-ins" {
    for_each = {
      "net.ipv4.ip_forward"         = "1"
      "net.core.netdev_max_backlog" = "250000"
    }
    line {
      path   = "/etc/sysctl.d/90-runbook.conf"
      regexp = "^${replace(each.key, ".", "\\.")} *="
      line   = "${each.key} = ${each.value}"
      create = true
    }
  }
}
