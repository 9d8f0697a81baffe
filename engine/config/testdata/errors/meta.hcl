play "meta" {
  hosts               = "all"
  serial              = "120%" # ERROR: Invalid serial
  max_fail_percentage = 150 # ERROR: Invalid max_fail_percentage
  forks               = 0 # ERROR: Invalid forks
  become              = "sometimes" # ERROR: Incorrect attribute value type
  strategy            = "fastest" # ERROR: Invalid strategy
  become_method       = "pbrun" # ERROR: Unsupported become method

  task "slow" {
    timeout       = "5 minutes" # ERROR: Invalid duration
    become_method = "ansible.builtin.sudo" # ERROR: Unsupported become method
    command {
      cmd = "true"
    }
  }

  task "careless" {
    on_failure = "ignore" # ERROR: Invalid on_failure
    retries    = -1 # ERROR: Invalid retries
    command {
      cmd = "true"
    }
  }

  task "when is a string" {
    when = "yes" # ERROR: Invalid when
    command {
      cmd = "true"
    }
  }

  task "for_each a number" {
    for_each = 3 # ERROR: Invalid for_each
    command {
      cmd = "true"
    }
  }
}

play "empty pattern" {
  hosts = "" # ERROR: Invalid host pattern
}

play "bad regex" {
  hosts = "~kvm(" # ERROR: Invalid host pattern

  handler "once only" {
    run_once = true # ERROR: Invalid run_once
    command {
      cmd = "true"
    }
  }
}
