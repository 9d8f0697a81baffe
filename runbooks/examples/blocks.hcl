# block: a group of tasks sharing when, for_each, become and tags; for_each repeats the whole
# group per element; rescue runs on a host where a task of the group failed (and, when it
# succeeds, the host goes on, counted as rescued); always runs either way.

variable "vlans" {
  type    = map(number)
  default = { storage = 30, vmotion = 40 }
}

play "vlans" {
  hosts = "all"

  block "per vlan" {
    for_each = var.vlans
    when     = length(try(host.vars.data_nics, [])) > 0
    tags     = ["network"]
    become   = true

    task "vlan interface" {
      interface {
        name = "${host.vars.data_nics[0]}.${each.value}"
        vlan = { parent = host.vars.data_nics[0], id = each.value }
        mtu  = 9000
      }
    }

    task "reachable" {
      command { argv = ["ip", "link", "show", "dev", "${host.vars.data_nics[0]}.${each.value}"] }
      changed_when = false
    }

    rescue {
      # Only on a host where a task above failed, for this element.
      task "remove half-made vlan" {
        command { argv = ["ip", "link", "delete", "${host.vars.data_nics[0]}.${each.value}"] }
        failed_when = self.rc != 0 && self.rc != 1
      }
    }

    always {
      task "record" {
        line {
          path   = "/var/log/runbook-vlans"
          line   = "${each.key} ${each.value}"
          create = true
        }
      }
    }
  }

  task "after the vlans" {
    # After the block, a task of it holds every element's result, by key.
    assert {
      that = [for k, r in task["reachable"].results : r.status != "failed"]
    }
  }
}
