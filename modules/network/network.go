package network

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbook/runbook/modules"
)

func init() {
	modules.Register[bondArgs, bondResult](Bond{})
	modules.Register[ifaceArgs, ifaceResult](Interface{})
	modules.Register[sriovArgs, sriovResult](SRIOV{})
}

// ifNamePattern is what the kernel takes as an interface name: at most 15 bytes, no slash,
// colon or white space (dev_valid_name), and not "." or "..".
var ifNamePattern = regexp.MustCompile(`^[^/:\s]{1,15}$`)

const ifNameHelp = "an interface name: 1 to 15 characters, without '/', ':' or spaces"

var mtuPattern = regexp.MustCompile(`^(?i:auto|[0-9]+)$`)

func validIfName(s string) bool { return ifNamePattern.MatchString(s) && s != "." && s != ".." }

// persistArgs are the arguments bond and interface share for where their state is kept.
func persistArgs() []modules.Arg {
	return []modules.Arg{
		{Name: "backend", Type: cty.String, Default: cty.StringVal(backendAuto), OneOf: backendNames,
			Doc: `Where the persistent configuration goes: "NetworkManager" (keyfiles in /etc/NetworkManager/system-connections, mode 0600), "network-scripts" (/etc/sysconfig/network-scripts/ifcfg-*), "systemd-networkd" (/etc/systemd/network), "ifupdown" (/etc/network/interfaces and interfaces.d), "none" (runtime only), or "auto": the backend the host uses (the facts module's network.backend).`},
		{Name: "persist", Type: cty.Bool, Default: cty.True,
			Doc: "Write the persistent configuration, so the state survives a reboot. false is the same as backend = \"none\"."},
		{Name: "runtime", Type: cty.Bool, Default: cty.True,
			Doc: "Change the running kernel state. false manages only the persistent configuration (the state the next boot or network restart builds)."},
	}
}

// mtuArg documents the MTU argument shared by bond and interface.
func mtuArg(doc string) modules.Arg {
	return modules.Arg{Name: "mtu", Type: cty.String, Pattern: mtuPattern, PatternHelp: `a number of bytes such as 9000, or "auto"`, Doc: doc}
}

// deref returns an optional string argument, "" when it is not given.
func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// orEmpty makes a nil list an empty one: the results' lists are never null.
func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// canonAddrs checks and canonicalises an addresses argument.
func canonAddrs(arg string, addrs []string) ([]string, []modules.ArgError) {
	var out []string
	var errs []modules.ArgError
	for _, a := range addrs {
		c, err := canonPrefix(a)
		if err != nil {
			errs = append(errs, modules.ArgError{Arg: arg, Msg: err.Error()})
			continue
		}
		if !contains(out, c) {
			out = append(out, c)
		}
	}
	return out, errs
}

// joinLines renders drift lines for a diff.
func joinLines(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return strings.Join(l, "\n") + "\n"
}

// anyValue turns data of no fixed type (maps, lists, numbers, strings, bools) into the
// value a result field of any type holds: the one its JSON implies, as the controller reads
// it from the wire.
func anyValue(v any) (cty.Value, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return cty.NilVal, err
	}
	t, err := ctyjson.ImpliedType(raw)
	if err != nil {
		return cty.NilVal, err
	}
	return ctyjson.Unmarshal(raw, t)
}
