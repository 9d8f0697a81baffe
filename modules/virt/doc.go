// Package virt holds the modules that manage virtual machines' definitions in libvirt:
// vm_nic gives a guest its network interfaces.
package virt
