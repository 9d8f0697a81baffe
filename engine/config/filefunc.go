package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// maxFileFunc bounds what file() reads: a secret, a key or a certificate, not data.
const maxFileFunc = 1 << 20

// defaultContext is where a variable's default is evaluated: no variables, and only the
// functions that read a file relative to the runbook and tidy what it holds. This is the
// one place where an expression reads the filesystem; it happens once, while the runbook
// loads, never per host. The value is marked sensitive when the variable is, like any of
// its values.
func defaultContext(declaredIn string) *hcl.EvalContext {
	return &hcl.EvalContext{Functions: map[string]function.Function{
		"file":      fileFunc(filepath.Dir(declaredIn)),
		"trimspace": stdlib.TrimSpaceFunc,
		"chomp":     stdlib.ChompFunc,
	}}
}

// fileFunc returns file(path): the content of a UTF-8 text file, path relative to dir (the
// directory of the runbook file that calls it) unless absolute. Its errors name the path,
// never the content.
func fileFunc(dir string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if p == "" {
				return cty.NilVal, errors.New("the path is empty")
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			f, err := os.Open(p)
			if err != nil {
				var pe *fs.PathError
				if errors.As(err, &pe) {
					err = pe.Err
				}
				return cty.NilVal, fmt.Errorf("cannot read %s: %w", p, err)
			}
			defer f.Close()
			if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() {
				return cty.NilVal, fmt.Errorf("%s is not a regular file", p)
			}
			b, err := io.ReadAll(io.LimitReader(f, maxFileFunc+1))
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot read %s: %w", p, err)
			}
			if len(b) > maxFileFunc {
				return cty.NilVal, fmt.Errorf("%s is larger than %d KiB", p, maxFileFunc>>10)
			}
			if !utf8.Valid(b) {
				return cty.NilVal, fmt.Errorf("%s is not UTF-8 text", p)
			}
			return cty.StringVal(string(b)), nil
		},
	})
}
