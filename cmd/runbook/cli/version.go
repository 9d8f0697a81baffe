package cli

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/version"
	"github.com/runbook/runbook/modules"
)

func (a *app) versionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print runbook's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if a.output == "json" {
				return json.NewEncoder(a.stdout).Encode(map[string]any{
					"version": version.Version, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH,
					"modules": modules.Names(),
				})
			}
			fmt.Fprintf(a.stdout, "runbook %s (%s, %s/%s, %d modules)\n", version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, len(modules.Names()))
			return nil
		},
	}
	a.outputFlag(cmd, "text", "json")
	return cmd
}
