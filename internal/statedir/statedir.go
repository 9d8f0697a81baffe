// Package statedir names the directory where runbook keeps what it learns between runs on
// the controller (the history database, the helper stamps): $XDG_STATE_HOME/runbook, else
// ~/.local/state/runbook.
package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Dir returns runbook's state directory; getenv reads the environment. A home that does not
// exist is an error: runbook never creates one.
func Dir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "runbook"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("neither XDG_STATE_HOME nor HOME is set")
	}
	if st, err := os.Stat(home); err != nil || !st.IsDir() {
		return "", fmt.Errorf("home directory %s does not exist", home)
	}
	return filepath.Join(home, ".local", "state", "runbook"), nil
}
