# Tasks run in file order; depends_on makes a task wait for others (and fixes the order
# where it matters). A task whose dependency failed is skipped.

play "ordering" {
  hosts = "all"

  task "start app" {
    depends_on = ["app config"]
    command {
      argv = ["systemctl", "restart", "example-app"]
    }
  }

  task "app config" {
    copy {
      dest    = "/etc/example-app.conf"
      content = "listen = 127.0.0.1:8080\n"
    }
  }
}
