# A runbook can be a directory: every .hcl file in it is read. Templates use HCL's
# template syntax and are rendered per host on the controller.

play "templating" {
  hosts = "all"

  task "motd" {
    template {
      src  = "motd.tftpl"
      dest = "/etc/motd"
      vars = {
        admins = var.admins
      }
    }
  }
}
