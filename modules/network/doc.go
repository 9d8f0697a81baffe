// Package network holds the modules that shape a host's network interfaces: bond (Linux
// bonding, 802.3ad first), bridge (Linux bridges, their ports, STP and VLAN filtering),
// interface (MTU, state, addresses, 802.1Q VLANs) and sriov (SR-IOV virtual functions of a
// NIC). Each reads the running state over netlink and sysfs and the
// persistent configuration of the host's network backend (NetworkManager keyfiles, ifcfg
// network-scripts, systemd-networkd, ifupdown), compares values rather than text, and reports
// runtime and persistent drift apart.
package network
