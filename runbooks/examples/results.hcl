# Results of earlier tasks: task["name"].<field> (see `runbook modules NAME` for fields).
# check_mode = false lets a read-only probe run in check mode too, so its result is there.

play "results" {
  hosts = "all"

  task "kernel" {
    check_mode = false
    command {
      cmd = "uname -r"
    }
  }

  task "kernel is recent enough" {
    assert {
      that     = [!startswith(task["kernel"].stdout, "3.")]
      fail_msg = "kernel 3.x is too old for this runbook"
    }
  }
}
