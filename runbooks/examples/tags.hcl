# Tags select tasks: runbook exec site.hcl -i inv --tags network (or --skip-tags checks).
# A task tagged "always" runs whatever --tags says.

play "tagged" {
  hosts = "all"

  task "facts probe" {
    tags       = ["always"]
    check_mode = false
    command {
      cmd = "uname -r"
    }
  }

  task "network config" {
    tags = ["network"]
    line {
      path   = "/etc/hosts"
      regexp = "^127\\.0\\.1\\.1"
      line   = "127.0.1.1 ${host.name}"
    }
  }

  task "disk check" {
    tags = ["checks"]
    command {
      cmd = "df -h /"
    }
  }
}
