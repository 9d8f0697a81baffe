// Package transport is the SSH layer of `runbook exec`: one verified SSH
// connection per host, many sessions on it.
//
// A Target says where and how to connect; ResolveTarget fills it from the
// OpenSSH client configuration with the inventory's values taking precedence.
// Dialer.Dial connects (directly, through a ProxyJump chain or a
// ProxyCommand), verifies the host key against known_hosts, authenticates
// with ssh-agent and key files, and returns a Conn. A Conn runs commands
// (Run, Start), optionally under sudo with the password sent over stdin, or
// under su or doas on a pseudo-terminal (RunAs, StartAs), and uploads files
// over SFTP (Upload).
//
// Errors that mean "the host could not be reached or would not let us in"
// (dial, handshake, host key, authentication, a connection lost mid-run)
// satisfy IsUnreachable; the engine reports such a host as unreachable rather
// than failed.
package transport
