# retries, delay and until: try again until a condition holds. self is the current attempt's
# result.

play "retries" {
  hosts = "all"

  task "wait for the API" {
    retries = 10
    delay   = "3s"
    until   = self.rc == 0
    timeout = "1m"
    command {
      argv = ["curl", "-fsS", "http://127.0.0.1:8080/health"]
    }
  }

  task "best effort" {
    on_failure = "continue"
    command {
      cmd = "systemctl restart optional-agent"
    }
  }
}
