// Package standard links every module that ships with runbook into a binary; import it for
// its side effects.
package standard

import (
	_ "github.com/runbook/runbook/modules/accounts"
	_ "github.com/runbook/runbook/modules/facts"
	_ "github.com/runbook/runbook/modules/generic"
	_ "github.com/runbook/runbook/modules/network"
	_ "github.com/runbook/runbook/modules/security"
	_ "github.com/runbook/runbook/modules/system"
	_ "github.com/runbook/runbook/modules/virt"
)
