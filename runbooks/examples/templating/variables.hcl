variable "admins" {
  type    = list(string)
  default = ["ops@example.invalid"]
}
