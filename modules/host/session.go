package host

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// SSHSession is where the SSH connection that started this process enters the host: the
// TCP connection(s) of the sshd process found above it, or what SSH_CONNECTION says.
type SSHSession struct {
	Conns []SessionConn
	// Source says how the session was found, for messages: "the socket of process 812
	// (sshd)" or "SSH_CONNECTION".
	Source string
	// OtherNetns: the process that holds the socket is in another network namespace than
	// this one, so no interface this process sees carries the session.
	OtherNetns bool
	// Lost says why the connections found do not show the interfaces the session runs
	// over ("" when they do): a session over loopback whose other end could not be
	// followed, more connections than are read. The guard then counts every interface
	// that holds an address or a default route.
	Lost string
}

// SessionConn is one TCP connection: the host's end and the client's (or the jump host's).
type SessionConn struct {
	Local, Peer netip.AddrPort
}

// Bounds on what FindSSHSession reads: /proc is the kernel's, but it is large on a busy
// host and its process names are anyone's.
const (
	sessionMaxDepth   = 64      // ancestors walked
	sessionMaxFDs     = 4096    // descriptors looked at per process
	sessionMaxConns   = 16      // connections followed; more and the session counts as not located
	sessionMaxProcs   = 1 << 15 // processes looked at for the other end of a loopback session
	sessionMaxScanFDs = 1 << 18 // descriptors looked at in that scan, all processes together
	sessionMaxLines   = 1 << 20 // lines of /proc/PID/net/tcp{,6}
	sessionMaxLineLen = 512     // bytes of one such line
	sessionMaxStat    = 4096    // bytes of /proc/PID/stat
)

// SessionFinder finds the SSH session a process runs under. The zero value looks at the
// running system for the calling process.
type SessionFinder struct {
	Root Root                // where /proc is ("" is the real one)
	PID  int                 // the process to start from (0: this one)
	Env  func(string) string // the environment (nil: os.Getenv)
}

// FindSSHSession works out the session of the process: it walks up its ancestors
// (/proc/PID/stat) to sshd's process (named sshd, sshd-session or dropbear) that holds an
// ESTABLISHED TCP socket (its /proc/PID/fd links matched against /proc/PID/net/tcp and
// tcp6), and takes the connections of every ancestor on the way as well (a sudo that keeps
// a connection to a log server sits between sshd and the helper: more connections make
// the guard more careful, never less). Without an sshd-like ancestor, the first one that
// holds a connection is taken, and Source says so. A session whose peer is this host
// (loopback: a tunnel, a port forwarder) is followed to the local process holding the
// other end, whose other connections count; when it cannot be, Lost says why. sudo resets
// the environment, so this works under become where SSH_CONNECTION is gone;
// SSH_CONNECTION is the fallback when /proc tells nothing. The error says why neither
// worked.
func (f SessionFinder) FindSSHSession() (*SSHSession, error) {
	s, procErr := f.fromProc()
	if procErr == nil {
		return s, nil
	}
	env := f.Env
	if env == nil {
		env = os.Getenv
	}
	if v := env("SSH_CONNECTION"); v != "" {
		c, err := ParseSSHConnection(v)
		if err != nil {
			return nil, fmt.Errorf("%v; and SSH_CONNECTION: %v", procErr, err)
		}
		s := &SSHSession{Conns: []SessionConn{c}, Source: "SSH_CONNECTION"}
		if isLocalPeer(c) {
			s.Lost = fmt.Sprintf("its peer %s is this host, and SSH_CONNECTION does not say which process holds that end", c.Peer)
		}
		return s, nil
	}
	return nil, fmt.Errorf("%v, and SSH_CONNECTION is not set", procErr)
}

// isSSHD says whether a process name (as stat shows it) is an SSH server's.
func isSSHD(comm string) bool {
	return comm == "sshd" || comm == "dropbear" || strings.HasPrefix(comm, "sshd-") || strings.HasPrefix(comm, "sshd:")
}

// errTooManyConns: a process holds more established connections than are followed.
var errTooManyConns = fmt.Errorf("more than %d established TCP connections", sessionMaxConns)

// holder is an ancestor that holds established connections.
type holder struct {
	desc  string // "70 (sshd)"
	conns []SessionConn
	other bool // in another network namespace than the process
	many  bool // more than sessionMaxConns
}

func (f SessionFinder) fromProc() (*SSHSession, error) {
	pid := f.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	selfNS, _ := os.Readlink(f.Root.Path(fmt.Sprintf("/proc/%d/ns/net", pid)))
	var denied []string
	var holders []holder
	sshd := false
	seen := map[int]bool{}
	for depth := 0; depth < sessionMaxDepth && !sshd; depth++ {
		comm, ppid, err := f.stat(pid)
		if err != nil {
			if depth == 0 {
				return nil, fmt.Errorf("no process tree to look at (%v)", err)
			}
			if len(holders) > 0 {
				break
			}
			return nil, fmt.Errorf("no ancestor holds a TCP connection (%v)", err)
		}
		if depth > 0 {
			conns, err := f.established(pid)
			switch {
			case errors.Is(err, os.ErrPermission):
				denied = append(denied, fmt.Sprintf("%d (%s)", pid, comm))
			case err != nil && !errors.Is(err, errTooManyConns):
				return nil, fmt.Errorf("process %d (%s): %v", pid, comm, err)
			case len(conns) > 0 || err != nil:
				ns, _ := os.Readlink(f.Root.Path(fmt.Sprintf("/proc/%d/ns/net", pid)))
				holders = append(holders, holder{desc: fmt.Sprintf("%d (%s)", pid, comm), conns: conns,
					other: selfNS != "" && ns != "" && ns != selfNS, many: err != nil})
				sshd = isSSHD(comm)
			}
		}
		seen[pid] = true
		if ppid <= 0 || seen[ppid] {
			break
		}
		pid = ppid
	}
	if len(holders) == 0 {
		why := "no ancestor process holds an established TCP connection"
		if len(denied) > 0 {
			why += "; the sockets of " + strings.Join(denied, ", ") + " could not be read"
		}
		return nil, errors.New(why)
	}
	s := &SSHSession{}
	var descs []string
	if !sshd {
		// No SSH server above: the first process holding a connection, as the best guess.
		holders = holders[:1]
	}
	var mine, other []SessionConn
	many := false
	for _, h := range holders {
		descs = append(descs, h.desc)
		many = many || h.many
		if h.other {
			other = append(other, h.conns...)
		} else {
			mine = append(mine, h.conns...)
		}
	}
	switch {
	case len(descs) == 1:
		s.Source = "the socket of process " + descs[0]
	default:
		s.Source = "the sockets of processes " + strings.Join(descs, ", ")
	}
	if !sshd {
		s.Source += ", the first ancestor that holds a TCP connection (no sshd process above)"
	}
	s.Conns = mine
	if len(mine) == 0 && len(other) > 0 && !many {
		s.Conns, s.OtherNetns = other, true
		return s, nil
	}
	if many || len(mine)+len(other) > sessionMaxConns {
		s.Lost = errTooManyConns.Error() + " (" + strings.Join(descs, ", ") + ")"
		return s, nil
	}
	f.followLocalPeers(s, selfNS)
	return s, nil
}

// isLocalPeer says whether a connection's two ends are on this host.
func isLocalPeer(c SessionConn) bool {
	return c.Peer.Addr().IsLoopback() || c.Peer.Addr() == c.Local.Addr()
}

// followLocalPeers: a connection whose peer is this host (a session over a tunnel, SSM,
// cloudflared, autossh -R or a port forwarder on 127.0.0.1) does not show the interface the
// session reaches the host by. A connection's other end is looked for in this namespace's
// TCP table (local and peer swapped); when it is there, the process holding it is found (a
// bounded scan of /proc) and its own connections that leave the host are added. When a
// loopback peer's end is not there, its process is not found, or holds no connection that
// leaves the host, s.Lost says so.
func (f SessionFinder) followLocalPeers(s *SSHSession, selfNS string) {
	conns := slices.Clone(s.Conns)
	swapped := map[SessionConn]int{}
	for i, c := range conns {
		swapped[swappedConn(c)] = i
	}
	ends := map[int]uint64{}
	dir := fmt.Sprintf("/proc/%d/net/", f.pidOrSelf())
	for _, file := range []string{"tcp", "tcp6"} {
		err := scanTCPTable(f.Root.Path(dir+file), func(local, peer netip.AddrPort, inode uint64) bool {
			if i, ok := swapped[SessionConn{Local: local, Peer: peer}]; ok {
				ends[i] = inode
			}
			return true
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			for _, c := range conns {
				if isLocalPeer(c) {
					s.Lost = fmt.Sprintf("its peer %s is this host, and this namespace's TCP table could not be read (%v)", c.Peer, err)
					return
				}
			}
			return
		}
	}
	for i, c := range conns {
		inode, ok := ends[i]
		if !ok {
			if isLocalPeer(c) {
				s.Lost = fmt.Sprintf("its peer %s is this host, and no socket of this namespace holds that end", c.Peer)
				return
			}
			continue
		}
		owner, desc, err := f.socketOwner(inode)
		if err != nil {
			s.Lost = fmt.Sprintf("its peer %s is this host, and the process holding that end was not found (%v)", c.Peer, err)
			return
		}
		if ns, _ := os.Readlink(f.Root.Path(fmt.Sprintf("/proc/%d/ns/net", owner))); selfNS != "" && ns != "" && ns != selfNS {
			s.Lost = fmt.Sprintf("its peer %s is process %s, in another network namespace", c.Peer, desc)
			return
		}
		theirs, err := f.established(owner)
		if err != nil {
			s.Lost = fmt.Sprintf("its peer %s is process %s, whose connections could not be read (%v)", c.Peer, desc, err)
			return
		}
		added := 0
		for _, oc := range theirs {
			if oc == swappedConn(c) || isLocalPeer(oc) || slices.Contains(s.Conns, oc) {
				continue
			}
			s.Conns = append(s.Conns, oc)
			added++
		}
		if added == 0 {
			s.Lost = fmt.Sprintf("its peer %s is process %s, which holds no connection that leaves this host", c.Peer, desc)
			return
		}
		if len(s.Conns) > sessionMaxConns {
			s.Lost = errTooManyConns.Error() + " (with those of process " + desc + ")"
			return
		}
		s.Source += fmt.Sprintf("; its peer %s is process %s, whose connections count too", c.Peer, desc)
	}
}

func swappedConn(c SessionConn) SessionConn { return SessionConn{Local: c.Peer, Peer: c.Local} }

func (f SessionFinder) pidOrSelf() int {
	if f.PID != 0 {
		return f.PID
	}
	return os.Getpid()
}

// socketOwner finds the process with a descriptor on the socket: a scan of
// /proc/*/fd, bounded in processes and descriptors.
func (f SessionFinder) socketOwner(inode uint64) (int, string, error) {
	d, err := os.Open(f.Root.Path("/proc"))
	if err != nil {
		return 0, "", err
	}
	names, err := d.Readdirnames(sessionMaxProcs)
	d.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, "", err
	}
	budget := sessionMaxScanFDs
	want := fmt.Sprintf("socket:[%d]", inode)
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := f.Root.Path(fmt.Sprintf("/proc/%d/fd", pid))
		fd, err := os.Open(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		fds, _ := fd.Readdirnames(sessionMaxFDs)
		fd.Close()
		for _, e := range fds {
			if budget--; budget < 0 {
				return 0, "", fmt.Errorf("more than %d descriptors to look at", sessionMaxScanFDs)
			}
			if t, err := os.Readlink(path.Join(fdDir, e)); err == nil && t == want {
				comm, _, err := f.stat(pid)
				if err != nil {
					return 0, "", err
				}
				return pid, fmt.Sprintf("%d (%s)", pid, comm), nil
			}
		}
	}
	return 0, "", fmt.Errorf("no process readable here holds socket %d", inode)
}

// stat reads a process's name and parent from /proc/PID/stat. The name is between the
// first "(" and the last ")", since it may hold both; it is shown only with other
// characters than letters, digits and "-_.@:" replaced.
func (f SessionFinder) stat(pid int) (string, int, error) {
	fh, err := os.Open(f.Root.Path(fmt.Sprintf("/proc/%d/stat", pid)))
	if err != nil {
		return "", 0, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, sessionMaxStat+1))
	if err != nil {
		return "", 0, err
	}
	if len(b) > sessionMaxStat {
		return "", 0, fmt.Errorf("/proc/%d/stat is longer than %d bytes", pid, sessionMaxStat)
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, fmt.Errorf("/proc/%d/stat: no process name", pid)
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 2 {
		return "", 0, fmt.Errorf("/proc/%d/stat: no parent", pid)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil || ppid < 0 {
		return "", 0, fmt.Errorf("/proc/%d/stat: parent %q is not a process id", pid, fields[1])
	}
	return safeName(s[open+1 : end]), ppid, nil
}

func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.@:", r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
		if b.Len() >= 32 {
			break
		}
	}
	return b.String()
}

// established returns the ESTABLISHED TCP connections whose sockets process pid holds.
func (f SessionFinder) established(pid int) ([]SessionConn, error) {
	dir := f.Root.Path(fmt.Sprintf("/proc/%d/fd", pid))
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	entries, err := d.ReadDir(sessionMaxFDs)
	d.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	inodes := map[uint64]bool{}
	for _, e := range entries {
		target, err := os.Readlink(path.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if n, ok := socketInode(target); ok {
			inodes[n] = true
		}
	}
	if len(inodes) == 0 {
		return nil, nil
	}
	var out []SessionConn
	for _, file := range []string{"tcp", "tcp6"} {
		err := scanTCPTable(f.Root.Path(fmt.Sprintf("/proc/%d/net/%s", pid, file)), func(local, peer netip.AddrPort, inode uint64) bool {
			if inodes[inode] {
				out = append(out, SessionConn{Local: local, Peer: peer})
			}
			return len(out) <= sessionMaxConns
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if len(out) > sessionMaxConns {
			return out[:sessionMaxConns], errTooManyConns
		}
	}
	return out, nil
}

// socketInode reads a descriptor's link, "socket:[12345]".
func socketInode(link string) (uint64, bool) {
	rest, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(rest, "]")
	if !ok || num == "" || len(num) > 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	return n, err == nil
}

// tcpEstablished is TCP_ESTABLISHED as /proc/net/tcp shows a socket's state.
const tcpEstablished = "01"

// scanTCPTable reads /proc/net/tcp or tcp6 and calls each with every established
// connection, until it returns false. Every field used is checked; a line that does not
// parse is an error.
func scanTCPTable(p string, each func(local, peer netip.AddrPort, inode uint64) bool) error {
	fh, err := os.Open(p)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, sessionMaxLineLen), sessionMaxLineLen)
	for line := 0; sc.Scan(); line++ {
		if line == 0 {
			continue // the header
		}
		if line > sessionMaxLines {
			return fmt.Errorf("%s: more than %d lines", p, sessionMaxLines)
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			return fmt.Errorf("%s line %d: %d fields", p, line+1, len(fields))
		}
		inode, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil {
			return fmt.Errorf("%s line %d: inode %q", p, line+1, fields[9])
		}
		if fields[3] != tcpEstablished {
			continue
		}
		local, err1 := parseProcAddr(fields[1])
		peer, err2 := parseProcAddr(fields[2])
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("%s line %d: %v", p, line+1, err)
		}
		if !each(local, peer, inode) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %v", p, err)
	}
	return nil
}

// parseProcAddr reads "0100007F:0016" (IPv4) or 32 hex digits and a port (IPv6): the
// address as the kernel prints it, 32-bit words in the machine's byte order.
func parseProcAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(p) != 4 || (len(a) != 8 && len(a) != 32) {
		return netip.AddrPort{}, fmt.Errorf("address %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q", s)
	}
	buf := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(buf[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(buf)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// ParseSSHConnection reads SSH_CONNECTION: "CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT".
func ParseSSHConnection(v string) (SessionConn, error) {
	f := strings.Fields(v)
	if len(f) != 4 || len(v) > 200 {
		return SessionConn{}, fmt.Errorf("%q is not CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT", clip(v))
	}
	var ap [2]netip.AddrPort
	for i, pair := range [][2]string{{f[2], f[3]}, {f[0], f[1]}} {
		a, err := netip.ParseAddr(pair[0])
		port, perr := strconv.ParseUint(pair[1], 10, 16)
		if err != nil || perr != nil || port == 0 {
			return SessionConn{}, fmt.Errorf("%q is not CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT", clip(v))
		}
		ap[i] = netip.AddrPortFrom(a.WithZone("").Unmap(), uint16(port))
	}
	return SessionConn{Local: ap[0], Peer: ap[1]}, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
