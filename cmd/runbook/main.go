// Command runbook runs HCL runbooks against fleets of Linux hosts over SSH.
package main

import (
	"os"

	"github.com/runbook/runbook/cmd/runbook/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ()))
}
