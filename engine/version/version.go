// Package version holds runbook's version, set at build time by the Makefile.
package version

// Version is overridden with -ldflags "-X github.com/runbook/runbook/engine/version.Version=...".
var Version = "dev"
