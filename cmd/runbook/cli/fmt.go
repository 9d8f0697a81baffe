package cli

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/modules/hostfs"
)

func (a *app) fmtCmd() *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "fmt [--check] [PATH...]",
		Short: "Rewrite .hcl files in canonical layout",
		Long: `Rewrites runbook, inventory and variable files (.hcl) in canonical layout: indentation,
aligned equals signs, spacing. Directories are searched recursively (hidden ones skipped);
the default path is the current directory. Files are replaced atomically. With --check,
nothing is written: the files that would change are listed and the exit code is 1.
Files with syntax errors are reported and left alone. Files in HCL's JSON syntax
(.hcl.json) are left alone: fmt formats only the native syntax (a directory's JSON files
are skipped, a JSON file named on the command line gets a warning). The runbook modules a
runbook calls (module blocks' source) are formatted with it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			var diags hcl.Diagnostics
			var files []string
			for _, root := range args {
				found, err := hclFiles(root)
				if err != nil {
					diags = append(diags, diag.Errorf("Cannot read path", "%s", err))
					continue
				}
				files = append(files, found...)
				// the runbook modules it calls are formatted with it
				for _, dir := range config.CalledModules(root) {
					if more, err := hclFiles(dir); err == nil {
						files = append(files, more...)
					}
				}
			}
			files = uniqueFiles(files)
			changed := 0
			for _, name := range files {
				if config.IsJSONFile(name) {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagWarning,
						Summary:  "Not formatted",
						Detail:   fmt.Sprintf("%s is in HCL's JSON syntax; runbook fmt formats only the native syntax (.hcl) and leaves JSON files as they are.", name),
					})
					continue
				}
				src, err := os.ReadFile(name)
				if err != nil {
					diags = append(diags, diag.Errorf("Cannot read file", "%s", err))
					continue
				}
				out, fdiags := config.Format(name, src)
				if fdiags.HasErrors() {
					diags = append(diags, fdiags...)
					continue
				}
				if bytes.Equal(out, src) {
					continue
				}
				changed++
				fmt.Fprintln(a.stdout, name)
				if check {
					continue
				}
				if err := writeAtomic(name, out); err != nil {
					diags = append(diags, diag.Errorf("Cannot write file", "%s", err))
				}
			}
			a.report(nil, diags)
			if diags.HasErrors() || (check && changed > 0) {
				return fail(ExitInvalid)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "write nothing; list files that are not formatted and exit 1 if any")
	return cmd
}

// uniqueFiles drops the second mention of a file (by its absolute path).
func uniqueFiles(files []string) []string {
	seen := map[string]bool{}
	out := files[:0:0]
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			abs = f
		}
		if !seen[abs] {
			seen[abs] = true
			out = append(out, f)
		}
	}
	return out
}

func hclFiles(root string) ([]string, error) {
	info, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{root}, nil
	}
	var out []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".hcl") {
			out = append(out, path)
		}
		return nil
	})
	return out, err
}

// writeAtomic replaces a file through a temporary file in the same directory, keeping its mode.
func writeAtomic(name string, data []byte) error {
	info, err := os.Stat(name)
	if err != nil {
		return err
	}
	return hostfs.WriteAtomic(name, data, hostfs.Options{Mode: info.Mode().Perm(), UID: -1, GID: -1})
}
