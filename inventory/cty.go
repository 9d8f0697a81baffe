package inventory

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"

	"github.com/zclconf/go-cty/cty"
)

// CtyValue converts a variable value to cty, so runbooks can use host.vars.x in HCL
// expressions: mappings become objects, lists tuples, numbers cty.Number. NaN, which
// cty cannot hold, becomes a null number.
func CtyValue(v any) cty.Value {
	return ctyValue(v, 0)
}

func ctyValue(v any, depth int) cty.Value {
	if depth > 1000 {
		return cty.DynamicVal
	}
	switch x := v.(type) {
	case nil:
		return cty.NullVal(cty.DynamicPseudoType)
	case string:
		return cty.StringVal(x)
	case bool:
		return cty.BoolVal(x)
	case int:
		return cty.NumberIntVal(int64(x))
	case int32:
		return cty.NumberIntVal(int64(x))
	case int64:
		return cty.NumberIntVal(x)
	case uint64:
		return cty.NumberUIntVal(x)
	case float32:
		return ctyValue(float64(x), depth)
	case float64:
		if math.IsNaN(x) {
			return cty.NullVal(cty.Number)
		}
		return cty.NumberVal(new(big.Float).SetFloat64(x))
	case json.Number:
		if n, err := cty.ParseNumberVal(x.String()); err == nil {
			return n
		}
		return cty.StringVal(x.String())
	case []any:
		if len(x) == 0 {
			return cty.EmptyTupleVal
		}
		vals := make([]cty.Value, len(x))
		for i, e := range x {
			vals[i] = ctyValue(e, depth+1)
		}
		return cty.TupleVal(vals)
	case []string:
		l := make([]any, len(x))
		for i, s := range x {
			l[i] = s
		}
		return ctyValue(l, depth)
	case map[string]any:
		if len(x) == 0 {
			return cty.EmptyObjectVal
		}
		vals := make(map[string]cty.Value, len(x))
		for k, e := range x {
			vals[k] = ctyValue(e, depth+1)
		}
		return cty.ObjectVal(vals)
	}
	return cty.StringVal(fmt.Sprint(v))
}
