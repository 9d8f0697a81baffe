package network

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var _ linkOps = (*netlink.Handle)(nil)

func openNetlink() (linkOps, func(), error) {
	// Only rtnetlink: a kernel without XFRM or netfilter netlink (a minimal one) refuses
	// the other families, and links, addresses and VFs need none of them.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("open netlink: %w", err)
	}
	return h, h.Close, nil
}
