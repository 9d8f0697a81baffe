// Package security holds the modules for a host's security layers: SELinux and the
// firewall (firewalld and iptables).
package security
