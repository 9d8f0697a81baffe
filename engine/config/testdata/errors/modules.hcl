play "modules" {
  hosts = "all"

  task "typo in module" {
    servce { # ERROR: Unknown module
      name = "firewalld"
    }
  }

  task "typo in argument" {
    command {
      cmdd = "uptime" # ERROR: Unsupported argument
    }
  }

  task "wrong type" {
    file {
      path = ["/etc/motd"] # ERROR: Incorrect attribute value type
    }
  }

  task "missing path" {
    file { # ERROR: Missing required argument
      state = "directory"
    }
  }

  task "bad state" {
    file {
      path  = "/srv"
      state = "dir" # ERROR: Invalid value for "state"
    }
  }

  task "content and src" {
    copy {
      dest    = "/etc/motd"
      content = "hi"
      src     = "motd.txt" # ERROR: Conflicting arguments
    }
  }

  task "neither cmd nor argv" {
    command { # ERROR: Missing required argument
      chdir = "/tmp"
    }
  }

  task "bad mode" {
    file {
      path = "/etc/motd"
      mode = "644x" # ERROR: Invalid value for "mode"
    }
  }

  task "bad regexp" {
    line {
      path   = "/etc/selinux/config"
      regexp = "^SELINUX=(" # ERROR: Invalid value for "regexp"
      line   = "SELINUX=disabled"
    }
  }

  task "empty assert" {
    assert {
      that = [] # ERROR: Invalid value for "that"
    }
  }

  task "relative path" {
    file {
      path = "etc/motd" # ERROR: Invalid value for "path"
    }
  }
}
