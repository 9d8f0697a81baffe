package network

import (
	"regexp"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

func init() {
	modules.Register[cty.Value, map[string]any](Bond{})
	modules.Register[cty.Value, map[string]any](Interface{})
	modules.Register[cty.Value, map[string]any](SRIOV{})
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

// str returns a string argument, "" when null.
func str(args cty.Value, name string) string {
	v := args.GetAttr(name)
	if v.IsNull() {
		return ""
	}
	return v.AsString()
}

func boolArg(args cty.Value, name string, def bool) bool {
	v := args.GetAttr(name)
	if v.IsNull() {
		return def
	}
	return v.True()
}

func strList(v cty.Value) []string {
	if v.IsNull() {
		return nil
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if !e.IsNull() {
			out = append(out, e.AsString())
		}
	}
	return out
}

// canonAddrs checks and canonicalises an addresses argument.
func canonAddrs(arg string, v cty.Value) ([]string, []modules.ArgError) {
	var out []string
	var errs []modules.ArgError
	for _, a := range strList(v) {
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

func anyList(l []string) []any {
	out := make([]any, 0, len(l))
	for _, s := range l {
		out = append(out, s)
	}
	return out
}

// joinLines renders drift lines for a diff.
func joinLines(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return strings.Join(l, "\n") + "\n"
}
