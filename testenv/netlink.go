package testenv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// configureHostNetns gives a host's namespace what a server's boot would: lo
// up, its management address on mgmt, mgmt up, the links of extra up, and
// the default route via gw. It speaks rtnetlink from a thread switched into
// the namespace: `ip -n NS -batch` did the same with a process a host, which
// for a thousand hosts was most of the network's setup time.
func configureHostNetns(netnsFile, mgmt string, mgmtIP netip.Addr, plen int, gw netip.Addr, extra []string) error {
	return inNetns(netnsFile, func() error { return configureHere(mgmt, mgmtIP, plen, gw, extra) })
}

// inNetns runs f on a thread switched into the network namespace netnsFile:
// sockets f opens, and processes it starts, are in that namespace.
func inNetns(netnsFile string, f func() error) error {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own netns: %w", err)
	}
	defer unix.Close(self)
	target, err := unix.Open(netnsFile, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open %s: %w", netnsFile, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter %s: %w", netnsFile, err)
	}
	ferr := f()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the host's namespace: leave it locked so the
		// Go runtime ends it with this goroutine instead of reusing it.
		return errors.Join(ferr, fmt.Errorf("leave %s: %w", netnsFile, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// configureHere does configureHostNetns's work in the calling thread's
// network namespace.
func configureHere(mgmt string, mgmtIP netip.Addr, plen int, gw netip.Addr, extra []string) error {
	if !mgmtIP.Is4() || !gw.Is4() || plen < 0 || plen > 32 {
		return fmt.Errorf("management address %s/%d via %s: want IPv4", mgmtIP, plen, gw)
	}
	nl, err := newRtnl()
	if err != nil {
		return err
	}
	defer nl.close()
	index := func(name string) (int32, error) {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return 0, fmt.Errorf("link %s: %w", name, err)
		}
		return int32(ifi.Index), nil
	}
	setUp := func(name string) error {
		ix, err := index(name)
		if err != nil {
			return err
		}
		msg := unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: ix, Flags: unix.IFF_UP, Change: unix.IFF_UP}
		if err := nl.do(unix.RTM_NEWLINK, 0, structBytes(unsafe.Pointer(&msg), unix.SizeofIfInfomsg)); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
		return nil
	}
	if err := setUp("lo"); err != nil {
		return err
	}
	ix, err := index(mgmt)
	if err != nil {
		return err
	}
	a := mgmtIP.As4()
	addr := unix.IfAddrmsg{Family: unix.AF_INET, Prefixlen: uint8(plen), Index: uint32(ix)}
	body := append(structBytes(unsafe.Pointer(&addr), unix.SizeofIfAddrmsg), rtattr(unix.IFA_LOCAL, a[:])...)
	body = append(body, rtattr(unix.IFA_ADDRESS, a[:])...)
	if err := nl.do(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, body); err != nil {
		return fmt.Errorf("address %s/%d on %s: %w", mgmtIP, plen, mgmt, err)
	}
	for _, name := range append([]string{mgmt}, extra...) {
		if err := setUp(name); err != nil {
			return err
		}
	}
	g := gw.As4()
	rt := unix.RtMsg{Family: unix.AF_INET, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT,
		Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST}
	body = append(structBytes(unsafe.Pointer(&rt), unix.SizeofRtMsg), rtattr(unix.RTA_GATEWAY, g[:])...)
	if err := nl.do(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, body); err != nil {
		return fmt.Errorf("default route via %s: %w", gw, err)
	}
	return nil
}

// rtnl is a route netlink socket that sends one request at a time and waits
// for its acknowledgement.
type rtnl struct {
	fd  int
	seq uint32
	buf []byte
}

func newRtnl() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// A reply that never comes must not hang up: bound every read.
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink timeout: %w", err)
	}
	return &rtnl{fd: fd, buf: make([]byte, 8192)}, nil
}

func (n *rtnl) close() { unix.Close(n.fd) }

// do sends one request (type typ, extra flags, body) with NLM_F_ACK and
// returns the kernel's answer to it: nil or the errno it reports.
func (n *rtnl) do(typ uint16, flags uint16, body []byte) error {
	n.seq++
	hdr := unix.NlMsghdr{Len: uint32(unix.SizeofNlMsghdr + len(body)), Type: typ,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK | flags, Seq: n.seq}
	msg := append(structBytes(unsafe.Pointer(&hdr), unix.SizeofNlMsghdr), body...)
	if err := unix.Sendto(n.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	for {
		k, _, err := unix.Recvfrom(n.fd, n.buf, 0)
		if err != nil {
			return fmt.Errorf("netlink reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(n.buf[:k])
		if err != nil {
			return fmt.Errorf("netlink reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != n.seq || m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return errors.New("netlink reply: short error message")
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				return unix.Errno(-code)
			}
			return nil
		}
	}
}

// rtattr encodes one route attribute, padded to 4 bytes.
func rtattr(typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(l))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[4:], data)
	return b
}

func structBytes(p unsafe.Pointer, size int) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(p), size)...)
}
