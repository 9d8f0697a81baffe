package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// Each VM's QEMU listens for QMP (its machine protocol) on a Unix socket in the host's
// directory, so Break can freeze the guest (QMP "stop": the vCPU and the guest's devices
// stop, the guest's TCP stack no longer answers, as on a hung machine) and Heal thaw it
// ("cont"). The lab's control channel goes through the same QEMU, so it is frozen too
// until Heal.

// vmQMPFile is the QMP socket's name in the host's directory.
const vmQMPFile = "qmp.sock"

// vmQMPSocket is host h's QMP socket, or "" when its path cannot be one: sun_path holds
// 108 bytes, and QEMU's option syntax would split a path with a comma.
func vmQMPSocket(st *State, h *HostState) string {
	p := filepath.Join(st.hostDir(h), vmQMPFile)
	if len(p) > 100 || strings.ContainsRune(p, ',') {
		return ""
	}
	return p
}

// vmQMPArgs is the QEMU option that opens host h's QMP socket (none when its path
// cannot be one: the host then cannot be frozen).
func vmQMPArgs(st *State, h *HostState) []string {
	p := vmQMPSocket(st, h)
	if p == "" {
		return nil
	}
	return []string{"-qmp", "unix:" + p + ",server=on,wait=off"}
}

// qmpMaxLine bounds one line QEMU sends on the socket.
const qmpMaxLine = 64 << 10

// qmpReply is one message from QEMU: a command's return or error, or an event.
type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

// vmQMP runs the QMP commands on the socket in order, each waiting for QEMU's answer,
// within ctx (and at most 10 s).
func vmQMP(ctx context.Context, sock string, commands ...string) error {
	if sock == "" {
		return errors.New("this VM has no QMP socket (its lab directory's path is too long)")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("QMP: %w", err)
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	_ = c.SetDeadline(dl)
	r := bufio.NewReaderSize(c, 4096)
	readMsg := func() (qmpReply, error) {
		var line []byte
		for {
			chunk, more, err := r.ReadLine()
			if err != nil {
				return qmpReply{}, err
			}
			line = append(line, chunk...)
			if len(line) > qmpMaxLine {
				return qmpReply{}, errors.New("a line longer than 64 KiB")
			}
			if !more {
				break
			}
		}
		var m qmpReply
		if err := json.Unmarshal(line, &m); err != nil {
			return qmpReply{}, fmt.Errorf("not QMP: %q", truncate(string(line), 200))
		}
		return m, nil
	}
	// The greeting: {"QMP": {...}}.
	if _, err := readMsg(); err != nil {
		return fmt.Errorf("QMP greeting: %w", err)
	}
	for _, cmd := range append([]string{"qmp_capabilities"}, commands...) {
		b, _ := json.Marshal(map[string]string{"execute": cmd})
		if strings.HasPrefix(cmd, "{") {
			b = []byte(cmd) // a command with arguments, as QMP's JSON
		}
		if _, err := c.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("QMP %s: %w", cmd, err)
		}
		for {
			m, err := readMsg()
			if err != nil {
				return fmt.Errorf("QMP %s: %w", cmd, err)
			}
			if m.Event != "" {
				continue // STOP, RESUME, ...: not the answer
			}
			if m.Error != nil {
				return fmt.Errorf("QMP %s: %s: %s", cmd, m.Error.Class, m.Error.Desc)
			}
			if m.Return == nil {
				return fmt.Errorf("QMP %s: an answer with neither return nor error", cmd)
			}
			break
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Freeze stops host h's guest (QMP "stop"): it answers nothing until Thaw.
func (vmTier) Freeze(ctx context.Context, st *State, h *HostState) error {
	if !h.Main.Alive() {
		return fmt.Errorf("host %s is not running", h.Name)
	}
	return vmQMP(ctx, vmQMPSocket(st, h), "stop")
}

// Thaw lets host h's guest run again (QMP "cont"; harmless on a running guest).
func (vmTier) Thaw(ctx context.Context, st *State, h *HostState) error {
	if !h.Main.Alive() {
		return fmt.Errorf("host %s is not running", h.Name)
	}
	return vmQMP(ctx, vmQMPSocket(st, h), "cont")
}

// Reboot resets host h's guest as a power cycle would (QMP "system_reset": no clean
// shutdown), after telling QEMU to reset rather than exit on a reboot (the guests run with
// -no-reboot, so a crash ends them; "set-action" turns that off for this guest). The
// systemd userland's root disk lives in QEMU's snapshot, which a reset keeps; the busybox
// userland starts again from its initramfs.
func (vmTier) Reboot(ctx context.Context, st *State, h *HostState) error {
	if !h.Main.Alive() {
		return fmt.Errorf("host %s is not running", h.Name)
	}
	return vmQMP(ctx, vmQMPSocket(st, h), `{"execute":"set-action","arguments":{"reboot":"reset"}}`, "system_reset")
}
