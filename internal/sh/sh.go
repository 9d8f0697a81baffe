// Package sh quotes words for the POSIX shell that runs commands on hosts.
package sh

import "strings"

// Quote returns s as one shell word: as it is when it holds only characters the shell
// leaves alone (so command lines stay readable in logs), else single-quoted.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
