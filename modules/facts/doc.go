// Package facts gathers what a host is: its OS, init system, SELinux state, network
// backend and, per NIC, driver, firmware, bus info, link and PCIe slot, read from sysfs,
// procfs and ioctls rather than from tools' text output.
package facts
