// Package bench holds the benchmark that `make bench` runs: site.hcl (a runbook) and
// site.yml (the same eight tasks as an Ansible playbook), and the driver in cmd/runbench,
// which starts ns-tier labs, runs runbook, ansible-playbook and a minimal SSH client (the
// floor) against the same hosts and prints a table. The driver needs root; this package's
// tests only check that the two files are valid and agree, so `go test ./...` stays quick.
// Results and method: docs/performance.md.
package bench
