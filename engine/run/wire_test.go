package run

import (
	"encoding/json"
	"fmt"

	"github.com/runbook/runbook/modules"
)

// wireData is a module's data as a real executor returns it: the JSON object the helper
// sent, converted to the module's declared Returns (as engine/remote does). Fake executors
// use it, so that results reach the engine in the one form they take in a run.
func wireData(module string, data map[string]any) any {
	info, ok := modules.InfoOf(module)
	if !ok {
		panic(fmt.Sprintf("wireData: no module %q", module))
	}
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	v, err := modules.DataFromJSON(raw, info.Returns)
	if err != nil {
		panic(err)
	}
	return v
}
