# module: a directory of runbook files (variables, tasks, handlers, outputs) that plays call
# with their own values. Its tasks run in place, named after the call: "baseline.motd".

variable "profiles" {
  type = map(object({ swappiness = number, motd = string }))
  default = {
    hv    = { swappiness = 1, motd = "KVM hypervisor: changes go through runbook." }
    build = { swappiness = 60, motd = "Build host." }
  }
}

play "hosts" {
  hosts = "all"

  # One instance for every host.
  module "baseline" {
    source = "./baseline"
    vars   = { motd = "Managed by runbook.", sysctls = { "kernel.panic" = "10" } }
    tags   = ["baseline"]
  }

  # One instance per profile (profile["hv"], profile["build"]); each runs on the hosts
  # of the group named like it.
  module "profile" {
    source   = "./baseline"
    for_each = var.profiles
    when     = contains(host.groups, each.key)
    vars = {
      motd    = each.value.motd
      sysctls = { "vm.swappiness" = tostring(each.value.swappiness) }
    }
  }

  task "report" {
    # The caller reads the module's outputs, and its tasks' results by their full names.
    command { argv = ["cat", module.baseline.motd_path] }
    changed_when = false
    when         = task["baseline.motd"].status != "failed"
  }
}
