// Package system holds the modules that manage a Linux host's system state: services
// (systemd units and SysV scripts), the hostname, kernel modules and sysctl settings.
package system
