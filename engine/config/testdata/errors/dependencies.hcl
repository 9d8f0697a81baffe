play "deps" {
  hosts = "all"

  task "a" {
    depends_on = ["b"]
    command {
      cmd = "true"
    }
  }

  task "b" {
    depends_on = ["a"] # ERROR: Dependency cycle
    command {
      cmd = "true"
    }
  }

  task "c" {
    depends_on = ["d"] # ERROR: Reference to undeclared task
    notify     = ["restart netwrk"] # ERROR: Reference to undeclared handler
    command {
      cmd = "true"
    }
  }

  task "bare names" {
    depends_on = [c] # ERROR: Invalid reference
    command {
      cmd = "true"
    }
  }

  task "self" {
    depends_on = ["self"] # ERROR: Invalid dependency
    command {
      cmd = "true"
    }
  }

  task "c" { # ERROR: Duplicate task
    command {
      cmd = "true"
    }
  }

  handler "restart network" {
    command {
      cmd = "true"
    }
  }
}
