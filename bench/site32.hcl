# The 32-task variant of site.hcl: its seven host tasks and one more (uname), four times
# over, then the assert: what pipelining saves grows with the tasks (docs/performance.md).

locals {
  dir    = "/etc/runbook-bench"
  config = "${local.dir}/selinux-config"
}

play "bench32" {
  hosts = "all"

  task "state directory 1" {
    file {
      path  = local.dir
      state = "directory"
      mode  = "0755"
    }
  }

  task "seed selinux config 1" {
    shell {
      cmd     = "printf 'SELINUX=enforcing\\nSELINUXTYPE=targeted\\n' > ${local.config}"
      creates = local.config
    }
  }

  task "selinux disabled 1" {
    line {
      path   = local.config
      regexp = "^SELINUX="
      line   = "SELINUX=disabled"
    }
  }

  task "motd 1" {
    template {
      src  = "motd.tftpl"
      dest = "${local.dir}/motd"
      vars = { name = host.name, dir = local.dir }
    }
  }

  task "stat config 1" {
    changed_when = false
    command {
      argv = ["stat", "-c", "%s", local.config]
    }
  }

  task "true 1" {
    changed_when = false
    command {
      cmd = "true"
    }
  }

  task "loadavg 1" {
    changed_when = false
    command {
      cmd = "cat /proc/loadavg"
    }
  }

  task "uname 1" {
    changed_when = false
    command {
      argv = ["uname", "-r"]
    }
  }

  task "state directory 2" {
    file {
      path  = local.dir
      state = "directory"
      mode  = "0755"
    }
  }

  task "seed selinux config 2" {
    shell {
      cmd     = "printf 'SELINUX=enforcing\\nSELINUXTYPE=targeted\\n' > ${local.config}"
      creates = local.config
    }
  }

  task "selinux disabled 2" {
    line {
      path   = local.config
      regexp = "^SELINUX="
      line   = "SELINUX=disabled"
    }
  }

  task "motd 2" {
    template {
      src  = "motd.tftpl"
      dest = "${local.dir}/motd"
      vars = { name = host.name, dir = local.dir }
    }
  }

  task "stat config 2" {
    changed_when = false
    command {
      argv = ["stat", "-c", "%s", local.config]
    }
  }

  task "true 2" {
    changed_when = false
    command {
      cmd = "true"
    }
  }

  task "loadavg 2" {
    changed_when = false
    command {
      cmd = "cat /proc/loadavg"
    }
  }

  task "uname 2" {
    changed_when = false
    command {
      argv = ["uname", "-r"]
    }
  }

  task "state directory 3" {
    file {
      path  = local.dir
      state = "directory"
      mode  = "0755"
    }
  }

  task "seed selinux config 3" {
    shell {
      cmd     = "printf 'SELINUX=enforcing\\nSELINUXTYPE=targeted\\n' > ${local.config}"
      creates = local.config
    }
  }

  task "selinux disabled 3" {
    line {
      path   = local.config
      regexp = "^SELINUX="
      line   = "SELINUX=disabled"
    }
  }

  task "motd 3" {
    template {
      src  = "motd.tftpl"
      dest = "${local.dir}/motd"
      vars = { name = host.name, dir = local.dir }
    }
  }

  task "stat config 3" {
    changed_when = false
    command {
      argv = ["stat", "-c", "%s", local.config]
    }
  }

  task "true 3" {
    changed_when = false
    command {
      cmd = "true"
    }
  }

  task "loadavg 3" {
    changed_when = false
    command {
      cmd = "cat /proc/loadavg"
    }
  }

  task "uname 3" {
    changed_when = false
    command {
      argv = ["uname", "-r"]
    }
  }

  task "state directory 4" {
    file {
      path  = local.dir
      state = "directory"
      mode  = "0755"
    }
  }

  task "seed selinux config 4" {
    shell {
      cmd     = "printf 'SELINUX=enforcing\\nSELINUXTYPE=targeted\\n' > ${local.config}"
      creates = local.config
    }
  }

  task "selinux disabled 4" {
    line {
      path   = local.config
      regexp = "^SELINUX="
      line   = "SELINUX=disabled"
    }
  }

  task "motd 4" {
    template {
      src  = "motd.tftpl"
      dest = "${local.dir}/motd"
      vars = { name = host.name, dir = local.dir }
    }
  }

  task "stat config 4" {
    changed_when = false
    command {
      argv = ["stat", "-c", "%s", local.config]
    }
  }

  task "true 4" {
    changed_when = false
    command {
      cmd = "true"
    }
  }

  task "loadavg 4" {
    changed_when = false
    command {
      cmd = "cat /proc/loadavg"
    }
  }

  task "uname 4" {
    changed_when = false
    command {
      argv = ["uname", "-r"]
    }
  }

  task "loadavg read" {
    assert {
      that     = [length(split(" ", trimspace(task["loadavg 4"].stdout))) == 5, tonumber(trimspace(task["stat config 4"].stdout)) > 0]
      fail_msg = "unexpected /proc/loadavg or empty config"
    }
  }
}
