// Package host is the toolkit every module family uses to act on the host it runs on:
//
//   - running programs (exec.go): Cmd, Result, the Runner interface (the one seam tests
//     replace), Exec (the real runner: bounded output, a deadline, its own process group
//     killed as a whole, LC_ALL=C, a lookup that also searches the sbin directories,
//     secrets redacted before output is cut) and Output, which turns a non-zero exit into a
//     *modules.Failure with the tail of stderr;
//   - the rooted filesystem for tests (root.go): Root maps an absolute host path under a
//     test tree ("" is the real "/");
//   - systemd units (systemd.go): Unit, read by one `systemctl show` parser; PlanUnit, the
//     one set of rules that brings a unit to a wanted state (unmask, enable or disable,
//     start or stop, mask); Systemctl, which reads units and runs those steps;
//   - the SSH session a process runs under (session.go): SessionFinder walks up its
//     ancestors in /proc to sshd's socket (SSH_CONNECTION as the fallback), for the
//     network modules' management-path guard.
//
// Root only says where a host path is; how a file there is read or written safely (links
// followed only when trusted, atomic replacement, kept owners) is modules/hostfs's work.
// A module maps a path with Root.Path and hands the result to hostfs.
package host
