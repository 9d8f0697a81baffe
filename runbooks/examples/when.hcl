# when: a task runs on a host only when its condition is true there.

play "conditional" {
  hosts = "all"

  task "only on hypervisors" {
    when = contains(host.groups, "kvm")
    command {
      argv = ["systemctl", "is-active", "libvirtd"]
    }
  }

  task "only where a host var says so" {
    when = try(host.vars.jumbo_frames, false)
    command {
      argv   = ["ip", "link", "set", "dev", "ens1f0", "mtu", "9000"]
      unless = "[ \"$(cat /sys/class/net/ens1f0/mtu)\" = 9000 ]"
    }
  }
}
