package network

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// A bridge's STP state is the IFLA_BR_STP_STATE attribute of its link, which netlink's
// Bridge type neither reads nor writes: these read and set it with rtnetlink messages of
// their own, on a socket in the calling thread's network namespace (where the handle of
// openNetlink is too).

// nlBridgeSTP reads the STP state of the bridge with that index: 0 off, 1 the kernel's,
// 2 a user space daemon's (both on).
func nlBridgeSTP(index int) (bool, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
		if err != nil {
			return false, err
		}
		for _, a := range attrs {
			if a.Attr.Type != unix.IFLA_LINKINFO {
				continue
			}
			infos, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return false, err
			}
			for _, i := range infos {
				if i.Attr.Type != nl.IFLA_INFO_DATA {
					continue
				}
				data, err := nl.ParseRouteAttr(i.Value)
				if err != nil {
					return false, err
				}
				for _, d := range data {
					if d.Attr.Type == nl.IFLA_BR_STP_STATE && len(d.Value) >= 4 {
						return nl.NativeEndian().Uint32(d.Value[:4]) != 0, nil
					}
				}
			}
		}
	}
	return false, errors.New("the kernel's answer has no STP state")
}

// nlSetBridgeSTP turns STP on or off on the bridge with that index.
func nlSetBridgeSTP(index int, on bool) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	v := uint32(0)
	if on {
		v = 1
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_BR_STP_STATE, nl.Uint32Attr(v))
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("set stp: %w", err)
	}
	return nil
}
