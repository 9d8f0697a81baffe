# The benchmark runbook: eight idempotent tasks, the same as site.yml does with Ansible.
# After the first run every task reports ok (nothing changes). See docs/performance.md.

locals {
  dir    = "/etc/runbook-bench"
  config = "${local.dir}/selinux-config"
}

play "bench" {
  hosts = "all"

  task "state directory" {
    file {
      path  = local.dir
      state = "directory"
      mode  = "0755"
    }
  }

  task "seed selinux config" {
    shell {
      cmd     = "printf 'SELINUX=enforcing\\nSELINUXTYPE=targeted\\n' > ${local.config}"
      creates = local.config
    }
  }

  task "selinux disabled" {
    line {
      path   = local.config
      regexp = "^SELINUX="
      line   = "SELINUX=disabled"
    }
  }

  task "motd" {
    template {
      src  = "motd.tftpl"
      dest = "${local.dir}/motd"
      vars = { name = host.name, dir = local.dir }
    }
  }

  task "stat config" {
    changed_when = false
    command {
      argv = ["stat", "-c", "%s", local.config]
    }
  }

  task "true" {
    changed_when = false
    command {
      cmd = "true"
    }
  }

  task "loadavg" {
    changed_when = false
    command {
      cmd = "cat /proc/loadavg"
    }
  }

  task "loadavg read" {
    assert {
      that     = [length(split(" ", trimspace(task["loadavg"].stdout))) == 5, tonumber(trimspace(task["stat config"].stdout)) > 0]
      fail_msg = "unexpected /proc/loadavg or empty config"
    }
  }
}
