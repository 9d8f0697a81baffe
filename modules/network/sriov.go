package network

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/txn"
)

// SRIOV manages the virtual functions of an SR-IOV physical function.
type SRIOV struct {
	root host.Root
	open opener
	// run runs systemctl; nil runs the real one.
	run host.Runner
	// settle is how long to wait for the VFs to appear after changing their number.
	settle time.Duration
	// sysfsWrite writes a sysfs attribute (host path); nil writes the file.
	sysfsWrite func(p, value string) error
	// session locates the SSH session for the management-path guard; nil: the real one.
	session sessionFinder
	// txn keeps the transactions; nil: the helper's (txn.go).
	txn *txn.Manager
}

var (
	_ modules.Runner[sriovArgs]    = SRIOV{}
	_ modules.Validator[sriovArgs] = SRIOV{}
)

// sriovArgs are the sriov module's arguments. The whole numbers are float64 so that a
// fraction or a number out of range gets the module's own message.
type sriovArgs struct {
	Device  string   `cty:"device"`
	NumVFs  *float64 `cty:"num_vfs"`
	VFs     []vfArgs `cty:"vfs"`
	Persist bool     `cty:"persist"`
	Runtime bool     `cty:"runtime"`
	// OnManagementPath is "refuse" or "allow" (guard.go).
	OnManagementPath string `cty:"on_management_path"`
	// ConfirmTimeout is the transaction's time to be confirmed (txn.go); nil: the run's.
	ConfirmTimeout *string `cty:"confirm_timeout"`
}

// vfArgs is one element of vfs; a null member is not managed.
type vfArgs struct {
	Index    *float64 `cty:"index"`
	Trust    *bool    `cty:"trust"`
	Spoofchk *bool    `cty:"spoofchk"`
	MAC      *string  `cty:"mac"`
	VLAN     *float64 `cty:"vlan"`
}

// sriovResult is what an sriov run registers.
type sriovResult struct {
	TotalVFs        *int      `cty:"total_vfs"`
	NumVFs          *int      `cty:"num_vfs"`
	VFs             []vfState `cty:"vfs"`
	RuntimeDrift    []string  `cty:"runtime_drift"`
	PersistentDrift []string  `cty:"persistent_drift"`
	Unit            string    `cty:"unit"`
}

// vfState is one VF as netlink reports it.
type vfState struct {
	Index    int    `cty:"index"`
	MAC      string `cty:"mac"`
	VLAN     int    `cty:"vlan"`
	Trust    bool   `cty:"trust"`
	Spoofchk bool   `cty:"spoofchk"`
}

var vfObject = cty.ObjectWithOptionalAttrs(map[string]cty.Type{
	"index":    cty.Number,
	"trust":    cty.Bool,
	"spoofchk": cty.Bool,
	"mac":      cty.String,
	"vlan":     cty.Number,
}, []string{"trust", "spoofchk", "mac", "vlan"})

const (
	sriovUnitDir   = "/etc/systemd/system"
	sriovWantsDir  = "/etc/systemd/system/multi-user.target.wants"
	sriovUnitStem  = "runbook-sriov-"
	maxVFs         = 4096
	defaultSettle  = 30 * time.Second
	sysClassNet    = "/sys/class/net"
	sriovNumFile   = "sriov_numvfs"
	sriovTotalFile = "sriov_totalvfs"
)

func (SRIOV) Info() modules.Info {
	return modules.Info{
		Name:    "sriov",
		Family:  "network",
		Summary: "SR-IOV virtual functions of a NIC: how many, and each VF's trust, spoof checking, MAC and VLAN.",
		Description: `Sets the number of virtual functions of the physical function device (sysfs sriov_numvfs) and
the settings of the VFs listed in vfs (over netlink, as ip link set DEV vf N does): trust (let the
guest change its MAC and use promiscuous modes, which a BIG-IP VE needs), spoofchk, mac and vlan (0 is
untagged). A VF setting left unset is not managed.

The kernel changes the number of VFs only from or to zero, so going from N to M VFs writes 0 first:
every existing VF is removed and made again (guests using them lose them), and a warning says so.
A request the device cannot meet is refused before anything changes: num_vfs above sriov_totalvfs, a
VF index not below num_vfs (this one already when the runbook is loaded), a device without SR-IOV.

Persistent: the VFs do not survive a reboot by themselves. runbook writes a systemd unit,
/etc/systemd/system/runbook-sriov-DEVICE.service, a oneshot bound to the device, ordered before
network-pre.target (so the VFs exist before NetworkManager, networkd or the network service configure
interfaces) and enabled for multi-user.target; it sets sriov_numvfs (0 first when needed) and runs ip
link set for each VF's settings. A unit rather than a udev rule: a udev rule can write sriov_numvfs
but must not run long or order itself against the network stack, fails when VFs already exist, and
leaves VF settings to a RUN+= program udev may kill; the unit is ordered, shows in systemctl status
and the journal, and does both steps. The unit is compared by what it sets, not by its text.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "device", Type: cty.String, Required: true, Pattern: ifNamePattern, PatternHelp: ifNameHelp, Doc: `The physical function's interface, e.g. "ens1f0".`},
				{Name: "num_vfs", Type: cty.Number, Required: true, Doc: "Number of virtual functions (0 removes them all)."},
				{Name: "vfs", Type: cty.List(vfObject),
					Doc: `Settings of single VFs, each an object: index (required, below num_vfs), trust (bool), spoofchk (bool), mac ("02:00:00:00:01:01"), vlan (0-4095; 0 untagged).`},
				{Name: "persist", Type: cty.Bool, Default: cty.True, Doc: "Keep the VFs and their settings across reboots with a systemd unit (see above)."},
				{Name: "runtime", Type: cty.Bool, Default: cty.True, Doc: "Change the device now. false writes only the boot-time unit (for a device whose driver is not loaded yet, or a change left to the next boot)."},
				guardArg(),
				confirmArg(),
			},
		},
		Returns: []modules.Field{
			{Name: "total_vfs", Type: cty.Number, Doc: "sriov_totalvfs: the most VFs the device offers (null when the device does not say)."},
			{Name: "num_vfs", Type: cty.Number, Doc: "The number of VFs now."},
			{Name: "vfs", Type: cty.List(cty.Object(map[string]cty.Type{"index": cty.Number, "mac": cty.String, "vlan": cty.Number, "trust": cty.Bool, "spoofchk": cty.Bool})),
				Doc: "Every VF's settings as netlink reports them."},
			{Name: "runtime_drift", Type: cty.List(cty.String), Doc: "What differed on the device."},
			{Name: "persistent_drift", Type: cty.List(cty.String), Doc: "What differed in the boot-time unit."},
			{Name: "unit", Type: cty.String, Doc: `The unit that sets the VFs at boot ("" with persist = false).`},
		},
		Examples: []modules.Example{
			{Title: "Eight VFs for BIG-IP VE guests, the first two trusted without spoof checking", HCL: `task "ens1f0 VFs" {
  sriov {
    device  = "ens1f0"
    num_vfs = 8
    vfs = [
      { index = 0, trust = true, spoofchk = false },
      { index = 1, trust = true, spoofchk = false, vlan = 101 },
    ]
  }
}`},
		},
	}
}

// vfSpec is one VF's managed settings; nil fields are not managed.
type vfSpec struct {
	Index    int
	Trust    *bool
	Spoofchk *bool
	MAC      string
	VLAN     *int
}

type sriovSpec struct {
	policy  string // on_management_path
	device  string
	numVFs  int
	vfs     []vfSpec // by index
	persist bool
	runtime bool
}

// wholeNumber checks that f is a whole number from min to max; the int is f cut to a
// whole number either way.
func wholeNumber(f float64, min, max int) (int, bool) {
	return int(f), f == math.Trunc(f) && f >= float64(min) && f <= float64(max)
}

// numText shows a number as the task gave it.
func numText(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func parseSRIOV(args sriovArgs) (*sriovSpec, []modules.ArgError) {
	var errs []modules.ArgError
	s := &sriovSpec{device: args.Device, persist: args.Persist, runtime: args.Runtime, policy: args.OnManagementPath}
	if !validIfName(s.device) {
		errs = append(errs, modules.ArgError{Arg: "device", Msg: fmt.Sprintf("%q is not %s", s.device, ifNameHelp)})
	}
	if v := args.NumVFs; v != nil {
		n, ok := wholeNumber(*v, 0, maxVFs)
		if !ok {
			errs = append(errs, modules.ArgError{Arg: "num_vfs", Msg: fmt.Sprintf("num_vfs must be a whole number from 0 to %d, not %s", maxVFs, numText(*v))})
		}
		s.numVFs = n
	}
	seen := map[int]bool{}
	for _, o := range args.VFs {
		var vf vfSpec
		if o.Index == nil {
			errs = append(errs, modules.ArgError{Arg: "vfs", Msg: "every VF needs an index"})
			continue
		}
		n, ok := wholeNumber(*o.Index, 0, maxVFs-1)
		if !ok {
			errs = append(errs, modules.ArgError{Arg: "vfs", Msg: fmt.Sprintf("VF index %s is not a whole number from 0", numText(*o.Index))})
			continue
		}
		vf.Index = n
		if n >= s.numVFs {
			errs = append(errs, modules.ArgError{Arg: "vfs", Msg: fmt.Sprintf("VF index %d does not exist with num_vfs = %d (indexes run from 0 to num_vfs-1)", n, s.numVFs)})
		}
		if seen[n] {
			errs = append(errs, modules.ArgError{Arg: "vfs", Msg: fmt.Sprintf("VF %d is listed twice", n)})
		}
		seen[n] = true
		vf.Trust, vf.Spoofchk = o.Trust, o.Spoofchk
		if m := o.MAC; m != nil {
			hw, err := net.ParseMAC(*m)
			switch {
			case err != nil || len(hw) != 6:
				errs = append(errs, modules.ArgError{Arg: "vfs", Msg: fmt.Sprintf("VF %d: %q is not an Ethernet MAC address", n, *m)})
			case hw[0]&1 == 1:
				errs = append(errs, modules.ArgError{Arg: "vfs", Msg: fmt.Sprintf("VF %d: %s is a multicast address", n, hw)})
			case hw.String() == zeroMAC:
				errs = append(errs, modules.ArgError{Arg: "vfs", Msg: fmt.Sprintf("VF %d: the MAC must not be all zeros", n)})
			default:
				vf.MAC = hw.String()
			}
		}
		if v := o.VLAN; v != nil {
			x, ok := wholeNumber(*v, 0, 4095)
			if !ok {
				errs = append(errs, modules.ArgError{Arg: "vfs", Msg: fmt.Sprintf("VF %d: vlan must be a whole number from 0 to 4095", n)})
			}
			vf.VLAN = &x
		}
		s.vfs = append(s.vfs, vf)
	}
	slices.SortFunc(s.vfs, func(a, b vfSpec) int { return a.Index - b.Index })
	if !s.runtime && !s.persist {
		errs = append(errs, modules.ArgError{Msg: "runtime = false with persist = false leaves nothing to manage"})
	}
	errs = append(errs, confirmErrs(args.ConfirmTimeout)...)
	return s, errs
}

// Validate refuses what no device could do: a VF index at or above num_vfs, a bad MAC.
func (SRIOV) Validate(args sriovArgs) []modules.ArgError {
	_, errs := parseSRIOV(args)
	return errs
}

// vfDrift compares one VF's running settings with the wanted ones.
func vfDrift(w vfSpec, have *netlink.VfInfo) []string {
	var out []string
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	if w.Trust != nil && (have == nil || (have.Trust != 0) != *w.Trust) {
		from := "?"
		if have != nil {
			from = onOff(have.Trust != 0)
		}
		out = append(out, fmt.Sprintf("vf %d: trust %s → %s", w.Index, from, onOff(*w.Trust)))
	}
	if w.Spoofchk != nil && (have == nil || have.Spoofchk != *w.Spoofchk) {
		from := "?"
		if have != nil {
			from = onOff(have.Spoofchk)
		}
		out = append(out, fmt.Sprintf("vf %d: spoofchk %s → %s", w.Index, from, onOff(*w.Spoofchk)))
	}
	if w.MAC != "" && (have == nil || strings.ToLower(have.Mac.String()) != w.MAC) {
		from := "?"
		if have != nil {
			from = have.Mac.String()
		}
		out = append(out, fmt.Sprintf("vf %d: mac %s → %s", w.Index, from, w.MAC))
	}
	if w.VLAN != nil && (have == nil || have.Vlan != *w.VLAN) {
		from := "?"
		if have != nil {
			from = strconv.Itoa(have.Vlan)
		}
		out = append(out, fmt.Sprintf("vf %d: vlan %s → %d", w.Index, from, *w.VLAN))
	}
	return out
}

func findVF(vfs []netlink.VfInfo, idx int) *netlink.VfInfo {
	for i := range vfs {
		if vfs[i].ID == idx {
			return &vfs[i]
		}
	}
	return nil
}

// writeSysfs writes a sysfs attribute (no temporary file: sysfs has no rename).
func (f *fileTree) writeSysfs(p, value string) error {
	fh, err := os.OpenFile(f.Path(p), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := fh.WriteString(value); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

func (r SRIOV) opener() opener {
	if r.open != nil {
		return r.open
	}
	return openNetlink
}

// Run compares the device's VFs and the boot-time unit with the arguments and, when
// applying, changes what differs.
func (r SRIOV) Run(ctx context.Context, env *modules.Env, args sriovArgs, apply bool) (*modules.Result, error) {
	tx, err := newTxn(env, r.txn, "sriov", args.ConfirmTimeout)
	if err != nil {
		return nil, err
	}
	if !apply {
		tx = nil // check mode never arms anything
	}
	return tx.end(r.runAll(ctx, args, apply, tx))
}

func (r SRIOV) runAll(ctx context.Context, args sriovArgs, apply bool, tx *netTxn) (*modules.Result, error) {
	s, errs := parseSRIOV(args)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	f := &fileTree{r.root}
	res := &modules.Result{}
	data := sriovResult{VFs: []vfState{}}
	var runtimeDrift []string
	if s.runtime {
		var err error
		if runtimeDrift, err = r.runtime(ctx, f, s, res, &data, apply, tx); err != nil {
			return nil, err
		}
	}

	var bootDrift []string
	var changes []*stagedFile
	if s.persist {
		unit := sriovUnitName(s.device)
		data.Unit = unit
		ws := newWorkspace(f)
		var err error
		if bootDrift, err = planSRIOVUnit(ws, s); err != nil {
			return nil, err
		}
		changes = ws.changes()
		if apply && len(bootDrift) > 0 {
			if err := tx.files(f, changes); err != nil {
				return nil, err
			}
			if err := ws.apply(); err != nil {
				return nil, err
			}
			if err := r.enable(ctx, f, unit); err != nil {
				return nil, err
			}
		}
	}

	data.RuntimeDrift, data.PersistentDrift = orEmpty(runtimeDrift), orEmpty(bootDrift)
	res.Data = data
	if len(runtimeDrift)+len(bootDrift) == 0 {
		res.Status = modules.StatusOK
		res.Msg = fmt.Sprintf("SR-IOV of %s is in sync (%d VFs)", s.device, s.numVFs)
		return res, nil
	}
	res.Status = modules.DiffStatus(apply)
	var parts []string
	if len(runtimeDrift) > 0 {
		parts = append(parts, "runtime: "+strings.Join(runtimeDrift, "; "))
	}
	if len(bootDrift) > 0 {
		parts = append(parts, "boot: "+strings.Join(bootDrift, "; "))
	}
	res.Msg = modules.Tense(apply, "changed ", "would change ") + "SR-IOV of " + s.device + ": " + strings.Join(parts, " | ")
	before, after := "", ""
	if len(runtimeDrift) > 0 {
		before = "# runtime:\n" + joinLines(runtimeDrift)
		after = "# runtime:\n" + modules.Tense(apply, "(changed)\n", "(as the task says)\n")
	}
	before += describeFiles(changes, false)
	after += describeFiles(changes, true)
	res.Diff = &modules.Diff{Before: before, After: after, BeforeHeader: s.device + " SR-IOV (before)", AfterHeader: s.device + " SR-IOV (after)"}
	return res, nil
}

// runtime compares the device's VFs with the spec and, when applying, changes them. It
// fills the result's data about the device.
func (r SRIOV) runtime(ctx context.Context, f *fileTree, s *sriovSpec, res *modules.Result, data *sriovResult, apply bool, tx *netTxn) ([]string, error) {
	devDir := path.Join(sysClassNet, s.device, "device")
	if !f.exists(path.Join(sysClassNet, s.device)) {
		return nil, fmt.Errorf("no interface %s", s.device)
	}
	numText, ok, err := f.read(path.Join(devDir, sriovNumFile))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path.Join(devDir, sriovNumFile), err)
	}
	if !ok {
		return nil, fmt.Errorf("%s has no SR-IOV virtual functions to manage (no %s in %s: not a physical function, or its driver does not offer SR-IOV)", s.device, sriovNumFile, devDir)
	}
	cur, err := strconv.Atoi(strings.TrimSpace(numText))
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a number", path.Join(devDir, sriovNumFile), numText)
	}
	data.NumVFs = &cur
	if t, ok, _ := f.read(path.Join(devDir, sriovTotalFile)); ok {
		total, err := strconv.Atoi(strings.TrimSpace(t))
		if err == nil {
			data.TotalVFs = &total
			if s.numVFs > total {
				return nil, fmt.Errorf("%s offers at most %d VFs (sriov_totalvfs); num_vfs = %d is more", s.device, total, s.numVFs)
			}
		}
	} else {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s does not say how many VFs it offers (no %s)", s.device, sriovTotalFile))
	}

	ops, closeOps, err := r.opener()()
	if err != nil {
		return nil, err
	}
	defer closeOps()
	pf, err := ops.LinkByName(s.device)
	if err != nil {
		return nil, fmt.Errorf("read link %s: %w", s.device, err)
	}
	var runtimeDrift []string
	remake := cur != s.numVFs
	if remake {
		line := fmt.Sprintf("%s: num_vfs %d → %d", s.device, cur, s.numVFs)
		if cur > 0 && s.numVFs > 0 {
			line += " (through 0: the existing VFs are removed and made again)"
			res.Warnings = append(res.Warnings, fmt.Sprintf("changing %s from %d to %d VFs removes every VF first; guests using them lose them", s.device, cur, s.numVFs))
		}
		runtimeDrift = append(runtimeDrift, line)
	}
	var touches []pathChange
	if remake {
		touches = append(touches, pathChange{s.device, changeVFCount, runtimeDrift[0]})
	}
	for _, vf := range s.vfs {
		var have *netlink.VfInfo
		if !remake || cur == 0 {
			have = findVF(pf.Attrs().Vfs, vf.Index)
		}
		lines := vfDrift(vf, have)
		runtimeDrift = append(runtimeDrift, lines...)
		// A VF's VLAN or MAC changed under the host's own use of it (its netdev here)
		// cuts what runs over it.
		if dev := vfNetdev(f, s.device, vf.Index); dev != "" && !remake {
			for _, l := range lines {
				switch {
				case strings.HasPrefix(l, fmt.Sprintf("vf %d: vlan ", vf.Index)):
					touches = append(touches, pathChange{dev, changeVFVLAN, s.device + " " + l})
				case strings.HasPrefix(l, fmt.Sprintf("vf %d: mac ", vf.Index)):
					touches = append(touches, pathChange{dev, changeVFMAC, s.device + " " + l})
				}
			}
		}
	}
	if len(touches) > 0 {
		warns, err := guardChanges(ops, f, r.session, s.policy, touches)
		if err != nil {
			return nil, err
		}
		res.Warnings = append(res.Warnings, warns...)
	}
	if apply && len(runtimeDrift) > 0 {
		if err := tx.begin(ops, f, []string{s.device}); err != nil {
			return nil, err
		}
		if pf, err = r.applyVFs(ctx, f, ops, s, cur, devDir); err != nil {
			return nil, err
		}
		num := s.numVFs
		data.NumVFs = &num
	}
	for _, v := range pf.Attrs().Vfs {
		data.VFs = append(data.VFs, vfState{Index: v.ID, MAC: v.Mac.String(), VLAN: v.Vlan, Trust: v.Trust != 0, Spoofchk: v.Spoofchk})
	}
	return runtimeDrift, nil
}

// applyVFs sets the number of VFs (0 first when going from some to others, the kernel's
// rule) and then each listed VF's settings. It returns the PF as read afterwards.
func (r SRIOV) applyVFs(ctx context.Context, f *fileTree, ops linkOps, s *sriovSpec, cur int, devDir string) (netlink.Link, error) {
	num := path.Join(devDir, sriovNumFile)
	write := r.sysfsWrite
	if write == nil {
		write = f.writeSysfs
	}
	if cur != s.numVFs {
		if cur > 0 && s.numVFs > 0 {
			if err := write(num, "0"); err != nil {
				return nil, fmt.Errorf("remove the VFs of %s (write 0 to %s): %w", s.device, num, err)
			}
		}
		if err := write(num, strconv.Itoa(s.numVFs)); err != nil {
			return nil, fmt.Errorf("make %d VFs on %s (write %s): %w", s.numVFs, s.device, num, err)
		}
	}
	// The PF lists its VFs once the driver has made them.
	settle := r.settle
	if settle == 0 {
		settle = defaultSettle
	}
	deadline := time.Now().Add(settle)
	var pf netlink.Link
	for {
		var err error
		if pf, err = ops.LinkByName(s.device); err != nil {
			return nil, fmt.Errorf("read link %s: %w", s.device, err)
		}
		if len(pf.Attrs().Vfs) >= s.numVFs {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s lists %d VFs %s after asking for %d", s.device, len(pf.Attrs().Vfs), settle, s.numVFs)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, vf := range s.vfs {
		have := findVF(pf.Attrs().Vfs, vf.Index)
		if have == nil {
			return nil, fmt.Errorf("%s has no VF %d", s.device, vf.Index)
		}
		if vf.MAC != "" && strings.ToLower(have.Mac.String()) != vf.MAC {
			hw, _ := net.ParseMAC(vf.MAC)
			if err := ops.LinkSetVfHardwareAddr(pf, vf.Index, hw); err != nil {
				return nil, kernelErr(fmt.Sprintf("set %s vf %d mac %s", s.device, vf.Index, vf.MAC), err)
			}
		}
		if vf.VLAN != nil && have.Vlan != *vf.VLAN {
			if err := ops.LinkSetVfVlan(pf, vf.Index, *vf.VLAN); err != nil {
				return nil, kernelErr(fmt.Sprintf("set %s vf %d vlan %d", s.device, vf.Index, *vf.VLAN), err)
			}
		}
		if vf.Spoofchk != nil && have.Spoofchk != *vf.Spoofchk {
			if err := ops.LinkSetVfSpoofchk(pf, vf.Index, *vf.Spoofchk); err != nil {
				return nil, kernelErr(fmt.Sprintf("set %s vf %d spoofchk", s.device, vf.Index), err)
			}
		}
		if vf.Trust != nil && (have.Trust != 0) != *vf.Trust {
			if err := ops.LinkSetVfTrust(pf, vf.Index, *vf.Trust); err != nil {
				return nil, kernelErr(fmt.Sprintf("set %s vf %d trust", s.device, vf.Index), err)
			}
		}
	}
	pf, err := ops.LinkByName(s.device)
	if err != nil {
		return nil, fmt.Errorf("read link %s: %w", s.device, err)
	}
	return pf, nil
}

// systemdEscape escapes a string for a unit name as systemd-escape does.
func systemdEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (c == '.' && i > 0):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

func sriovUnitName(dev string) string { return sriovUnitStem + systemdEscape(dev) + ".service" }

// renderSRIOVUnit writes the unit that sets the VFs at boot.
func renderSRIOVUnit(s *sriovSpec) string {
	dev := "sys-subsystem-net-devices-" + systemdEscape(s.device) + ".device"
	num := path.Join(sysClassNet, s.device, "device", sriovNumFile)
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: SR-IOV virtual functions of %s, made before the network is configured.\n", managedComment, s.device)
	fmt.Fprintf(&b, "[Unit]\nDescription=SR-IOV virtual functions of %s (runbook)\n", s.device)
	fmt.Fprintf(&b, "BindsTo=%s\nAfter=%s\nBefore=network-pre.target\nWants=network-pre.target\n\n", dev, dev)
	b.WriteString("[Service]\nType=oneshot\nRemainAfterExit=yes\n")
	// The kernel changes the number only from or to zero.
	fmt.Fprintf(&b, "ExecStart=/bin/sh -c 'f=%s; n=$$(cat $$f); [ \"$$n\" = %d ] || { [ \"$$n\" = 0 ] || echo 0 > $$f; echo %d > $$f; }'\n", num, s.numVFs, s.numVFs)
	for _, vf := range s.vfs {
		if args := ipLinkVFWords(vf); len(args) > 0 {
			fmt.Fprintf(&b, "ExecStart=ip link set dev %s vf %d %s\n", s.device, vf.Index, strings.Join(args, " "))
		}
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

// ipLinkVFWords are the settings of one VF as "ip link set DEV vf N" takes them.
func ipLinkVFWords(vf vfSpec) []string {
	var out []string
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	if vf.MAC != "" {
		out = append(out, "mac", vf.MAC)
	}
	if vf.VLAN != nil {
		out = append(out, "vlan", strconv.Itoa(*vf.VLAN))
	}
	if vf.Spoofchk != nil {
		out = append(out, "spoofchk", onOff(*vf.Spoofchk))
	}
	if vf.Trust != nil {
		out = append(out, "trust", onOff(*vf.Trust))
	}
	return out
}

var (
	unitNumVFs = regexp.MustCompile(`\[ "\$\$n" = ([0-9]+) \]`)
	unitDevice = regexp.MustCompile(`f=/sys/class/net/([^/ ]+)/device/sriov_numvfs`)
)

// parseSRIOVUnit reads back what a unit sets: the device, the number of VFs and each VF's
// settings; ok is false when the unit is not one runbook can read.
func parseSRIOVUnit(text string) (dev string, num int, vfs map[int]vfSpec, ok bool) {
	doc := parseINI(text)
	vfs = map[int]vfSpec{}
	num = -1
	for _, line := range doc.getAll("Service", "ExecStart") {
		if m := unitNumVFs.FindStringSubmatch(line); m != nil {
			num, _ = strconv.Atoi(m[1])
			if d := unitDevice.FindStringSubmatch(line); d != nil {
				dev = d[1]
			}
			continue
		}
		f := strings.Fields(line)
		// [path/]ip link set dev DEV vf N key value...
		if len(f) < 7 || path.Base(f[0]) != "ip" || f[1] != "link" || f[2] != "set" || f[3] != "dev" || f[5] != "vf" {
			continue
		}
		idx, err := strconv.Atoi(f[6])
		if err != nil {
			continue
		}
		vf := vfs[idx]
		vf.Index = idx
		for i := 7; i+1 < len(f); i += 2 {
			switch k, v := f[i], f[i+1]; k {
			case "trust":
				b := v == "on"
				vf.Trust = &b
			case "spoofchk":
				b := v == "on"
				vf.Spoofchk = &b
			case "mac":
				if hw, err := net.ParseMAC(v); err == nil {
					vf.MAC = hw.String()
				}
			case "vlan":
				n, _ := strconv.Atoi(v)
				vf.VLAN = &n
			}
		}
		vfs[idx] = vf
	}
	return dev, num, vfs, num >= 0
}

func sameVF(a, b vfSpec) bool {
	eqB := func(x, y *bool) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	eqI := func(x, y *int) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Index == b.Index && a.MAC == b.MAC && eqB(a.Trust, b.Trust) && eqB(a.Spoofchk, b.Spoofchk) && eqI(a.VLAN, b.VLAN)
}

// planSRIOVUnit compares the unit (and its enable link) with the spec and stages the new
// unit in ws when they differ.
func planSRIOVUnit(ws *workspace, s *sriovSpec) ([]string, error) {
	unit := sriovUnitName(s.device)
	p := path.Join(sriovUnitDir, unit)
	text, exists, err := ws.read(p)
	if err != nil {
		return nil, err
	}
	var drift []string
	if !exists {
		drift = append(drift, p+": absent")
	} else if dev, num, vfs, ok := parseSRIOVUnit(text); !ok || dev != s.device {
		drift = append(drift, p+": not a unit runbook can read; written anew")
	} else {
		if num != s.numVFs {
			drift = append(drift, fmt.Sprintf("%s: num_vfs %d → %d", unit, num, s.numVFs))
		}
		want := map[int]vfSpec{}
		for _, vf := range s.vfs {
			if len(ipLinkVFWords(vf)) > 0 {
				want[vf.Index] = vf
			}
		}
		for _, idx := range sortedInts(want, vfs) {
			w, wok := want[idx]
			h, hok := vfs[idx]
			if wok != hok || !sameVF(w, h) {
				drift = append(drift, fmt.Sprintf("%s: vf %d %s → %s", unit, idx, orNone(strings.Join(ipLinkVFWords(h), " ")), orNone(strings.Join(ipLinkVFWords(w), " "))))
			}
		}
	}
	link := path.Join(sriovWantsDir, unit)
	if target, err := os.Readlink(ws.fs.Path(link)); err != nil || (target != p && path.Join(sriovWantsDir, target) != p) {
		drift = append(drift, unit+": not enabled")
	}
	if len(drift) > 0 {
		if err := ws.write(p, renderSRIOVUnit(s), 0o644); err != nil {
			return nil, err
		}
	}
	return drift, nil
}

func sortedInts(maps ...map[int]vfSpec) []int {
	var out []int
	for _, m := range maps {
		for k := range m {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// enable links the unit into multi-user.target.wants (what systemctl enable does for its
// WantedBy) and has a running systemd read it.
func (r SRIOV) enable(ctx context.Context, f *fileTree, unit string) error {
	link := path.Join(sriovWantsDir, unit)
	target := path.Join(sriovUnitDir, unit)
	if cur, err := os.Readlink(f.Path(link)); err != nil || cur != target {
		if err := os.MkdirAll(f.Path(sriovWantsDir), 0o755); err != nil {
			return fmt.Errorf("enable %s: %w", unit, err)
		}
		if err := os.Remove(f.Path(link)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("enable %s: %w", unit, err)
		}
		if err := os.Symlink(target, f.Path(link)); err != nil {
			return fmt.Errorf("enable %s: %w", unit, err)
		}
	}
	if !f.exists("/run/systemd/system") {
		return nil
	}
	run := r.run
	if run == nil {
		if !f.Real() {
			return nil
		}
		run = host.Exec{}
	}
	_, err := host.Systemctl{R: run, Timeout: time.Minute}.Run(ctx, "daemon-reload")
	return err
}
