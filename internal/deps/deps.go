// Package deps pins the project's direct dependencies while the packages that use them are
// being written in parallel; it is deleted once every import below has a real user.
package deps

import (
	_ "github.com/fatih/color"
	_ "github.com/hashicorp/hcl/v2"
	_ "github.com/hashicorp/hcl/v2/hclwrite"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/spf13/cobra"
	_ "github.com/zclconf/go-cty/cty"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/crypto/ssh"
	_ "golang.org/x/sys/unix"
)
