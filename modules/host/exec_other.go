//go:build !unix

package host

import "os/exec"

// The helper runs on Linux only; this lets the controller build elsewhere.
func ownProcessGroup(*exec.Cmd) {}
