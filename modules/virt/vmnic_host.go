package virt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

var _ modules.Runner[vmnicArgs] = VMNIC{}

// virshTimeout bounds one virsh call: libvirtd answers in milliseconds, unless it hangs.
const virshTimeout = 2 * time.Minute

// Run reads the domain's definition, plans its interfaces and, when applying, defines the
// domain anew with them.
//
// libvirt is reached through virsh rather than its RPC socket: the helper stays one static
// binary without cgo, virsh already knows every URI form (qemu+ssh, polkit, the modular
// daemons' sockets) and the protocol version the daemon speaks, and its error text is
// libvirt's own, which is what a failed task must show.
func (vm VMNIC) Run(ctx context.Context, env *modules.Env, args vmnicArgs, apply bool) (*modules.Result, error) {
	want, errs := parseNICs(args.Interfaces)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	name := args.Domain
	exclusive := args.Exclusive
	v := virsh{uri: args.URI, run: host.Exec{Env: env, Dirs: vm.dirs}, log: env.Log()}

	// The live XML of a running domain has an id; of a stopped one, it is the persistent
	// definition already, which saves the second call.
	live, err := v.dumpXML(ctx, name, false)
	if err != nil {
		return nil, err
	}
	persistent := live
	if live.active {
		if persistent, err = v.dumpXML(ctx, name, true); err != nil {
			return nil, err
		}
	}
	p := planNICs(persistent.ifaces, want, exclusive)
	data := &vmnicResult{UUID: persistent.uuid}
	var res *modules.Result
	if !p.changed() {
		data.Interfaces = describeAll(persistent.ifaces)
		res = &modules.Result{Status: modules.StatusOK, Data: data, Msg: fmt.Sprintf("%s: NICs as wanted (%s)", name, p.summary())}
		return withRestart(res, name, live, persistent.ifaces), nil
	}
	diff := &modules.Diff{
		Before:       listXML(persistent.ifaces),
		After:        listXML(p.interfaces()),
		BeforeHeader: "domain " + name + " interfaces (before)",
		AfterHeader:  "domain " + name + " interfaces (after)",
	}
	if !apply {
		data.Interfaces = describeAll(p.interfaces())
		res = &modules.Result{Status: modules.StatusDrift, Diff: diff, Data: data, Msg: fmt.Sprintf("%s: would define NICs: %s", name, p.summary())}
		return withRestart(res, name, live, p.interfaces()), nil
	}

	if err := v.define(ctx, persistent.withInterfaces(p.elements(persistent))); err != nil {
		return nil, err
	}
	now, err := v.dumpXML(ctx, name, true)
	if err != nil {
		return nil, err
	}
	diff.After = listXML(now.ifaces)
	data.Interfaces = describeAll(now.ifaces)
	data.UUID = now.uuid
	res = &modules.Result{Status: modules.StatusChanged, Diff: diff, Data: data, Msg: fmt.Sprintf("%s: defined NICs: %s", name, p.summary())}
	if now.uuid != persistent.uuid {
		return res, &modules.Failure{Msg: fmt.Sprintf("domain %s: its UUID changed from %s to %s on define", name, persistent.uuid, now.uuid)}
	}
	// What libvirt stored must be what was planned, or the next run would change it again.
	if again := planNICs(now.ifaces, want, exclusive); again.changed() {
		return res, &modules.Failure{Msg: fmt.Sprintf("domain %s: libvirt stored NICs other than the ones defined (a second run would find: %s); its definition is now:\n%s",
			name, again.summary(), listXML(now.ifaces))}
	}
	return withRestart(res, name, live, now.ifaces), nil
}

// withRestart sets restart_required, with a warning, when the domain is running with NICs
// other than those it is (or would be) defined with.
func withRestart(res *modules.Result, name string, live *domainDoc, defined []libvirtxml.DomainInterface) *modules.Result {
	if !live.active || sameDevices(live.ifaces, defined) {
		return res
	}
	res.Data.(*vmnicResult).RestartRequired = true
	verb := "is"
	if res.Status == modules.StatusDrift {
		verb = "would be"
	}
	res.Warnings = append(res.Warnings, fmt.Sprintf("domain %s is running with NICs other than the ones it %s defined with: they take effect when it is shut down and started again (a reboot inside the guest keeps the old ones)", name, verb))
	return res
}

// virsh runs libvirt's command-line client against one connection URI.
type virsh struct {
	uri string
	run host.Runner
	log *slog.Logger
}

func (v virsh) do(ctx context.Context, what string, args ...string) ([]byte, error) {
	v.log.Debug("virsh", "args", args)
	// The XML on stdout is parsed, so it is read whole (host.Cmd.Data); error text comes in
	// one language (LC_ALL=C), so it reads the same in every log.
	res, err := v.run.Run(ctx, host.Cmd{Argv: append([]string{"virsh", "-q", "-c", v.uri}, args...), Timeout: virshTimeout, Data: true})
	if err == nil && res.RC == 0 {
		return []byte(res.Stdout), nil
	}
	errText := res.Stderr
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return nil, &modules.Failure{Msg: "virsh not found: vm_nic needs libvirt's client (Debian: libvirt-clients, RHEL: libvirt-client) on the host"}
	case errors.Is(err, host.ErrStopped):
		return nil, &modules.Failure{Msg: fmt.Sprintf("%s: virsh did not answer: %v", what, err), Stderr: errText}
	case err != nil:
		return nil, &modules.Failure{Msg: fmt.Sprintf("%s: virsh: %v", what, err), Stderr: errText}
	}
	// libvirt's own words are the message; virsh's raw output is kept only when it has
	// none, since the controller shows a failure's stderr after its message.
	if msg := libvirtError(errText); msg != "" {
		return nil, &modules.Failure{Msg: fmt.Sprintf("%s: %s", what, msg)}
	}
	return nil, &modules.Failure{Msg: fmt.Sprintf("%s: virsh exited with %d", what, res.RC), Stderr: errText}
}

// dumpXML reads the domain's XML: the persistent definition with inactive, otherwise what
// it runs with (the same as the definition when it is stopped, which Run then defines back).
// It reads with --security-info, as `virsh edit` does: without it libvirt leaves out secrets
// such as the console password, and defining the XML back would drop them. Only the
// <interface> elements ever leave the helper (in diffs and data).
func (v virsh) dumpXML(ctx context.Context, name string, inactive bool) (*domainDoc, error) {
	args := []string{"dumpxml", "--security-info"}
	if inactive {
		args = append(args, "--inactive")
	}
	out, err := v.do(ctx, "read domain "+name, append(args, "--domain", name)...)
	if err != nil {
		return nil, err
	}
	doc, err := parseDomain(out)
	if err != nil {
		return nil, fmt.Errorf("domain %s: %w", name, err)
	}
	return doc, nil
}

// define hands libvirt the domain's new definition; libvirt checks it against its schema
// and its drivers' rules and refuses it whole, leaving the old one in place.
func (v virsh) define(ctx context.Context, xmlDoc []byte) error {
	f, err := os.CreateTemp("", "runbook-vm_nic-*.xml")
	if err != nil {
		return fmt.Errorf("define: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(xmlDoc)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("define: %w", werr)
	}
	_, err = v.do(ctx, "define domain", "define", "--validate", "--file", f.Name())
	return err
}

// libvirtError is the message of virsh's "error: ..." lines, without the line that only
// names the temporary file a definition was read from.
func libvirtError(stderr string) string {
	var parts []string
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimSpace(line)
		msg, ok := strings.CutPrefix(line, "error: ")
		if !ok {
			if line != "" && len(parts) > 0 { // schema errors continue on further lines
				parts[len(parts)-1] += "; " + line
			}
			continue
		}
		if strings.HasPrefix(msg, "Failed to define domain from ") {
			continue
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, ": ")
}
