package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// stateFile is the lab's record of everything it created, written before each
// thing is created so that Down can undo a half-finished Up after a crash.
const stateFile = "state.json"

const stateVersion = 1

// State is the on-disk record of a lab.
type State struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Dir     string    `json:"dir"`
	Tier    TierName  `json:"tier"`
	Created time.Time `json:"created"`

	Slot   int    `json:"slot"`
	Prefix string `json:"prefix"` // lab-unique name prefix, e.g. "rbl7"
	Subnet string `json:"subnet"` // management subnet, e.g. "10.201.7.0/24" (or "10.201.4.0/22" for a lab of several /24s)
	HubIP  string `json:"hub_ip"` // the hub's address on the first segment's bridge
	// Segments are the /24s of the management network, each with its bridge
	// in the hub namespace (one for a lab of up to MaxHostsPerSegment hosts).
	Segments []Segment `json:"segments,omitempty"`

	// Namespaces lists every named netns the lab created (hub, switch, hosts),
	// in creation order.
	Namespaces []string `json:"namespaces"`
	HubNS      string   `json:"hub_ns"`
	SwitchNS   string   `json:"switch_ns"`
	Bridge     string   `json:"bridge"` // the first segment's bridge
	// Route is the unreachable route added in the root namespace ("" until added).
	Route string `json:"route,omitempty"`

	// Owner is the process whose life the lab depends on: the test process for
	// in-process forwarders, the forwarder daemon for the CLI. If it is gone the
	// lab is orphaned and may be reclaimed.
	Owner     Proc `json:"owner"`
	Forwarder Proc `json:"forwarder,omitempty"`

	// BaseTree is the systemd tier's read-only root (empty for ns).
	BaseTree string `json:"base_tree,omitempty"`
	// VMAssets is the vm tier's cached kernel and initramfs directory.
	VMAssets string `json:"vm_assets,omitempty"`
	// VMUserland is the vm guests' userland ("" busybox, or systemd) and
	// VMRootImage the systemd userland's cached root disk image.
	VMUserland  string `json:"vm_userland,omitempty"`
	VMRootImage string `json:"vm_root_image,omitempty"`
	// Layers are the optional layers the lab's hosts get (names), and
	// LayerTrees their cached directories, bottom first.
	Layers     []string `json:"layers,omitempty"`
	LayerTrees []string `json:"layer_trees,omitempty"`
	// InotifyRaised is set when this lab raised fs.inotify.max_user_instances.
	InotifyRaised bool `json:"inotify_raised,omitempty"`
	// Neigh is what the lab found and wrote when it raised the machine's
	// neighbour table limits (see neigh.go); nil before it did.
	Neigh *NeighRaise `json:"neigh,omitempty"`

	Hosts []*HostState `json:"hosts"`
}

// HostState is one host's part of the record.
type HostState struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	NetNS  string `json:"netns"`
	MgmtIP string `json:"mgmt_ip"`
	// Segment is the index of the host's segment in State.Segments, Gateway
	// that segment's hub address (the host's default route) and PrefixLen the
	// length of its management address's prefix.
	Segment   int      `json:"segment,omitempty"`
	Gateway   string   `json:"gateway,omitempty"`
	PrefixLen int      `json:"prefix_len,omitempty"`
	Port      int      `json:"port"`
	HubIf     string   `json:"hub_if"`
	SwIfs     []string `json:"switch_ifs"`
	DataIfs   []string `json:"data_ifs"`
	HostKey   string   `json:"host_key"` // public key, authorized_keys format
	// Main is the process that holds the host together: the ns tier's anchor
	// (which owns the host's mount and UTS namespaces), or systemd-nspawn.
	Main Proc `json:"main"`
	// Leader is the systemd tier's container PID 1.
	Leader Proc `json:"leader,omitempty"`
	// Cgroups are cgroup directories made for the container, removed at teardown.
	Cgroups []string `json:"cgroups,omitempty"`
	// Broken is the active fault ("", "stop", "slow", "drop").
	Broken BreakMode `json:"broken,omitempty"`
	// SlowVia records how "slow" was applied: "netem" or "forwarder".
	SlowVia string `json:"slow_via,omitempty"`
}

func (s *State) path() string { return filepath.Join(s.Dir, stateFile) }

func (s *State) hostDir(h *HostState) string { return filepath.Join(s.Dir, "hosts", h.Name) }

// save writes the state atomically.
func (s *State) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	if err := writeFile(s.path(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return nil
}

// errNoLab is returned by loadState when the directory holds no lab.
var errNoLab = errors.New("no lab state in directory")

func loadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, errNoLab)
	}
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode lab state %s: %w", filepath.Join(dir, stateFile), err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("lab state %s: version %d, want %d", dir, s.Version, stateVersion)
	}
	return &s, nil
}

func (s *State) host(name string) (*HostState, error) {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("lab %s has no host %q", s.Dir, name)
}
