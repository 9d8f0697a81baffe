// Package sh quotes words for the POSIX shell that runs commands on hosts.
package sh

import "strings"

// Quote returns s as one single-quoted shell word.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
