package testenv

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// TierName selects how lab hosts are made.
type TierName string

const (
	// TierNS: network, mount and UTS namespaces with one sshd per host.
	TierNS TierName = "ns"
	// TierSystemd: systemd-nspawn containers booting Debian with systemd,
	// NetworkManager and firewalld.
	TierSystemd TierName = "systemd"
	// TierVM: QEMU micro-VMs (TCG) booting Debian's kernel with an initramfs
	// userland; for network modules that need a real kernel (bonding, 802.1Q).
	TierVM TierName = "vm"
)

// BreakMode is a fault Break injects into a host.
type BreakMode string

const (
	// BreakStop stops the host's sshd (existing sessions survive, as with
	// `systemctl stop ssh` on a real server).
	BreakStop BreakMode = "stop"
	// BreakSlow adds latency (and, with netem, loss) to the host's management link.
	BreakSlow BreakMode = "slow"
	// BreakDrop cuts the host's management link: the hub side of its management veth is
	// set down, so packets to and from the host are lost (nothing is reset).
	BreakDrop BreakMode = "drop"
	// BreakFreeze freezes the host as a hung machine: its VM is stopped (QEMU's monitor
	// command "stop") and answers nothing, not even TCP, until Heal ("cont"). vm tier only;
	// the lab's control channel is frozen with it.
	BreakFreeze BreakMode = "freeze"
)

// freezer is a tier whose hosts can be frozen and thawed (the vm tier).
type freezer interface {
	Freeze(ctx context.Context, st *State, h *HostState) error
	Thaw(ctx context.Context, st *State, h *HostState) error
}

// rebooter is a tier that can reset a host as a power cycle would (the vm tier).
type rebooter interface {
	Reboot(ctx context.Context, st *State, h *HostState) error
}

// mgmtRestorer is a tier that can bring the management NIC inside a host back as the lab
// set it up (up, its address, the default route), after a task took it down: Heal does.
type mgmtRestorer interface {
	RestoreMgmt(ctx context.Context, st *State, h *HostState) error
}

// Tier is one way of making lab hosts. The lab builds the network (one netns
// per host with its NICs) and the forwarders; a tier turns each prepared
// namespace into a running host with sshd listening on port 22.
type Tier interface {
	Name() TierName
	// Check reports missing prerequisites as a *PrereqError.
	Check() error
	// Prepare does the per-lab work before hosts start (e.g. the base tree).
	Prepare(ctx context.Context, st *State, logf func(string, ...any)) error
	// Start boots every host of st. It records each host's processes in st
	// (and saves st) before waiting for them, so a failure can be torn down.
	// clientKey is the authorized_keys line of the lab's client key.
	Start(ctx context.Context, st *State, clientKey string, logf func(string, ...any)) error
	// Stop ends the tier's processes that do not live inside the host's netns
	// (the lab kills everything inside the namespaces afterwards).
	Stop(ctx context.Context, st *State) error
	// Cleanup removes tier resources after all processes are gone.
	Cleanup(ctx context.Context, st *State) error
	// NetnsPath is the file of host h's network namespace.
	NetnsPath(st *State, h *HostState) string
	// Command returns the argv that runs argv inside host h.
	Command(st *State, h *HostState, argv []string) ([]string, error)
	// StopSSH and StartSSH stop and restart the host's sshd for Break/Heal.
	StopSSH(ctx context.Context, st *State, h *HostState) error
	StartSSH(ctx context.Context, st *State, h *HostState) error
}

// PrereqError says a tier cannot run on this machine and why. Start skips on
// it (fails under CI=true); the CLI prints it.
type PrereqError struct {
	Tier    TierName
	Missing []string
}

func (e *PrereqError) Error() string {
	return fmt.Sprintf("lab tier %s cannot run here: %s", e.Tier, strings.Join(e.Missing, "; "))
}

// IsPrereq reports whether err is a *PrereqError.
func IsPrereq(err error) bool {
	var pe *PrereqError
	return errors.As(err, &pe)
}

var tiers = map[TierName]Tier{}

func registerTier(t Tier) { tiers[t.Name()] = t }

func tierFor(name TierName) (Tier, error) {
	t, ok := tiers[name]
	if !ok {
		var names []string
		for n := range tiers {
			names = append(names, string(n))
		}
		sort.Strings(names)
		return nil, fmt.Errorf("unknown lab tier %q (have %s)", name, strings.Join(names, ", "))
	}
	return t, nil
}

// Tiers lists the available tier names.
func Tiers() []TierName {
	var out []TierName
	for n := range tiers {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// CheckTier reports whether tier can run on this machine.
func CheckTier(name TierName) error {
	t, err := tierFor(name)
	if err != nil {
		return err
	}
	return t.Check()
}

// baseCheck covers what every tier needs: root and the namespace tools.
func baseCheck(bins ...string) []string {
	var missing []string
	if euid() != 0 {
		missing = append(missing, "must run as root")
	}
	for _, b := range append([]string{"ip", "nsenter", "unshare"}, bins...) {
		if _, err := lookPath(b); err != nil {
			missing = append(missing, "missing program "+b)
		}
	}
	return missing
}
