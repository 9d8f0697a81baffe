play "web" {
  hosts = # ERROR: Invalid expression
}
