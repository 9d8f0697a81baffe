// Package testenv runs "the lab": real Linux hosts on one machine for tests,
// benchmarks and the demo.
//
// Every lab host is a real OpenSSH sshd with its own host key, network
// namespace (a management NIC on the lab bridge plus two data NICs, ens1f0 and
// ens1f1, wired to a switch namespace), its own /etc and hostname. Two tiers sit
// behind the Tier interface:
//
//   - TierNS: namespaces + one sshd per host. Fast (50 hosts in seconds); for
//     the transport, scale tests and file-level modules.
//   - TierSystemd: systemd-nspawn containers booted from a cached debootstrap'd
//     Debian bookworm tree; for services, hostnamectl, NetworkManager, firewalld.
//     Options.Layers adds optional cached package layers over that tree
//     (LayerLibvirt: libvirt and QEMU) for the tests that need them.
//   - TierVM: QEMU micro-VMs under TCG booting Debian's own kernel from a cached
//     initramfs, for what the machine's kernel lacks: bonding (the data NICs are
//     wired to an 802.3ad partner inside each VM), 8021q VLANs, real modprobe.
//
// The controller reaches a host only through 127.0.0.1: a forwarder listens on
// one loopback port per host and dials the host's sshd from inside the lab's hub
// namespace, over the lab bridge, so breaking a host's link really affects the
// SSH traffic. Lab addresses exist only inside namespaces the lab created, and
// while a lab is up the root namespace carries an "unreachable" route for the
// lab subnet. Everything a lab creates is recorded in <dir>/state.json so a
// crashed run is cleaned up by the next Down or Up.
//
// Tests use testlab.Start (package testenv/testlab), which skips (or, with
// CI=true, fails) when the lab cannot run here. cmd/testenv is the CLI around
// the same code, and links no testing package.
package testenv
