play { # ERROR: Missing name for play
  hosts = "all"
}
