plays "web" { # ERROR: Unsupported block type
  hosts = "all"
}

play "db" {
  host  = "db" # ERROR: Unsupported argument
  hosts = "db"

  task "uptime" {
    whn = true # ERROR: Unsupported argument
    command {
      cmd = "uptime"
    }
  }

  task "nothing to do" { # ERROR: Missing module block
    tags = ["x"]
  }

  task "two modules" {
    command {
      cmd = "uptime"
    }
    shell { # ERROR: More than one module in a task
      cmd = "uptime"
    }
  }

  task "labelled" {
    command "x" { # ERROR: Unexpected label
      cmd = "uptime"
    }
  }

  handler "restart" {
    depends_on = ["uptime"] # ERROR: Unsupported argument
    command {
      cmd = "true"
    }
  }
}
