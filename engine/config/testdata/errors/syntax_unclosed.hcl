play "web" { # ERROR: Unclosed configuration block
  hosts = "all"
