// Package inventory reads the inventories runbook targets: which hosts exist, how they
// are grouped, how to reach them, and their variables.
//
// Formats:
//
//   - HCL (.hcl), runbook's own: host "name" { address, port, user, identity_file, jump,
//     vars } and group "name" { hosts, children, vars } blocks. Host names and group host
//     lists take Ansible ranges such as "kvm[01:20]".
//   - Ansible INI: [group], [group:vars], [group:children], inline host variables typed
//     like Python literals, host:port, ranges, and the implicit all and ungrouped groups.
//   - Ansible YAML (.yml, .yaml, and .json, which Ansible reads the same way): nested
//     hosts, vars and children under group names.
//   - An executable inventory script, run with --list (and --host NAME when its output
//     has no _meta.hostvars), with a timeout, an output limit, its own process group and
//     a filtered environment (LoadOptions, ScriptEnv).
//   - A directory of any of these, and several sources merged in order.
//
// group_vars/ and host_vars/ beside each source are applied with Ansible's precedence,
// and ListJSON, HostJSON and Graph print what ansible-inventory prints for the same
// sources, but for the values of variables named like secrets (SecretVar), which they
// print as modules.Redacted. Select evaluates Ansible host patterns.
//
// Host.Connection reads the connection and become variables of Ansible's ssh connection;
// Host.CheckConnection refuses, naming the host and the variable, those runbook cannot
// honour (another connection, an unknown become method, ssh arguments that forward ports
// or change algorithms), for callers to report before they connect to any host.
//
// Errors are hcl.Diagnostics that point at file:line:col in every format.
package inventory
