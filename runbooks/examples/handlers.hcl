# Handlers run once at the end of the play on a host, and only when a task that notified
# them changed something there.

play "handlers" {
  hosts = "all"

  task "sshd config" {
    notify = ["reload sshd"]
    line {
      path   = "/etc/ssh/sshd_config"
      regexp = "^#?PermitRootLogin"
      line   = "PermitRootLogin prohibit-password"
    }
  }

  handler "reload sshd" {
    command {
      argv = ["systemctl", "reload", "ssh"]
    }
  }
}
