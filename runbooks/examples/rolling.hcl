# Rolling changes: serial batches (a number, a percentage, or a list growing batch by batch),
# with max_fail_percentage checked per batch, and privilege escalation for the whole play.

play "rolling upgrade" {
  hosts               = "kvm:!kvm01"
  serial              = [1, "10%", "50%"]
  max_fail_percentage = 10
  forks               = 20
  become              = true

  task "package lists" {
    command {
      cmd = "apt-get update -q"
    }
  }
}
