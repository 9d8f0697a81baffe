#!/usr/bin/env bash
# make demo: start lab hosts, run the BIG-IP VE hypervisor runbook against them, show the
# results, run it again (0 changed), then check for drift and read the history back. The
# systemd hosts carry libvirt and a defined guest, whose NICs the runbook sets.
#
# Usage: scripts/demo.sh LABDIR HOSTS TIER. TIER is systemd (default: containers with
# systemd, NetworkManager, firewalld and libvirt; their kernel is this machine's, without
# bonding, so the bond is written to the network backend's files only) or vm (busybox
# micro-VMs booting Debian's kernel: the bond really negotiates LACP). With TIER=systemd the
# demo ends with one micro-VM that runs the systemd base and libvirt on Debian's kernel, where
# every step of the runbook applies on the one host, unless DEMO_VM=0. KEEP_LAB=1 leaves the
# labs up.
set -euo pipefail
labdir=${1:-$PWD/lab}
hosts=${2:-3}
tier=${3:-systemd}
runbook=runbooks/bigip-ve-kvm

if [ "$(id -u)" != 0 ]; then
  echo "make demo needs root: the lab makes network namespaces, containers and VMs." >&2
  exit 1
fi
scripts/install-deps.sh
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

labs=()
histdir=$(mktemp -d /tmp/runbook-demo-history.XXXXXX)
cleanup() {
  rm -rf "$histdir"
  for l in "${labs[@]}"; do
    if [ "${KEEP_LAB:-0}" = 1 ]; then
      echo "The lab stays up (KEEP_LAB=1): bin/testenv status --dir $l; make lab-down LABDIR=$l"
    else
      step "Tearing the lab down ($l)"
      bin/testenv down --dir "$l"
    fi
  done
}
trap cleanup EXIT

# demo KIND HOSTS DIR VARS...: one lab, the runbook twice, check, drift, report. KIND is
# systemd (containers with libvirt), vm (busybox micro-VMs) or vmsys (micro-VMs with the
# systemd base and libvirt).
demo() {
  local kind=$1 hosts=$2 dir=$3
  shift 3
  local vars=("$@") hist="$histdir/$(basename "$dir").db" up=() what
  case "$kind" in
  systemd) up=(--tier systemd --layer libvirt) what="systemd-container hosts with libvirt" ;;
  vm) up=(--tier vm) what="micro-VM hosts (busybox userland, Debian's kernel)" ;;
  vmsys) up=(--tier vm --userland systemd --layer libvirt) what="micro-VM host with the systemd base and libvirt on Debian's kernel (it boots systemd under TCG: about half a minute)" ;;
  esac
  step "Starting $hosts $what in $dir (a first start builds and caches the lab's base: a Debian tree, a kernel, initramfs and root image)"
  local t0
  t0=$(now)
  bin/testenv up "${up[@]}" --hosts "$hosts" --dir "$dir"
  labs+=("$dir")
  printf 'lab up in %.1fs\n' "$(since "$t0")"
  local inv="$dir/inventory.hcl"
  if [ "$kind" = systemd ] || [ "$kind" = vmsys ]; then
    step "Each host gets a stopped BIG-IP VE guest (bigip1) in its libvirt, with one NIC: the runbook gives it its NICs"
    for i in $(seq 1 "$hosts"); do
      bin/testenv exec --dir "$dir" "$(printf 'lab%02d' "$i")" -- sh -c "cat > /tmp/bigip1.xml <<'XML'
<domain type='qemu'><name>bigip1</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64'>hvm</type></os><devices>
<interface type='bridge'><mac address='52:54:00:0b:19:0$i'/><source bridge='br-mgmt'/><model type='virtio'/></interface>
</devices></domain>
XML
virsh -q define /tmp/bigip1.xml && virsh -q domiflist bigip1"
    done
  fi

  step "The lab's inventory"
  bin/runbook inventory -i "$inv" --graph

  step "Each host is a real sshd with its own host key, reached through 127.0.0.1 with strict host-key checking"
  local port
  port=$(sed -n 's/^ *port *= *\([0-9]*\)/\1/p' "$inv" | head -n1)
  ssh -F none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$dir/known_hosts" \
    -i "$dir/id_ed25519" -p "$port" root@127.0.0.1 \
    'echo "$(hostname): kernel $(uname -r), NICs $(ls /sys/class/net | tr "\n" " ")"; command -v systemctl >/dev/null && systemctl is-active NetworkManager firewalld 2>/dev/null || true'

  step "Validating $runbook against the lab inventory (${vars[*]})"
  bin/runbook validate "$runbook" -i "$inv" "${vars[@]}"

  step "First run: runbook exec $runbook (the helper is pushed to each host on first contact)"
  t0=$(now)
  bin/runbook exec "$runbook" -i "$inv" "${vars[@]}" --history "$hist" || echo "(exit code $?)"
  first=$(since "$t0")

  step "Second run: nothing left to change"
  t0=$(now)
  bin/runbook exec "$runbook" -i "$inv" "${vars[@]}" --history "$hist" || echo "(exit code $?)"
  second=$(since "$t0")

  step "Compliance check: runbook check $runbook (changes nothing; exit 0 means in sync)"
  bin/runbook check "$runbook" -i "$inv" "${vars[@]}" --history "$hist" || echo "(exit code $?)"

  if [ "$kind" = vmsys ]; then
    step "Reboot: runbook run all reboot (the guest really reboots and boots from what the runbook wrote; the run waits until the host answers with another boot id and its bond is up)"
    t0=$(now)
    bin/runbook run -i "$inv" all reboot "msg=runbook demo: boot from the persistent configuration" \
      "test_command=systemctl is-system-running --wait >/dev/null; ip link show bond0 >/dev/null" || echo "(exit code $?)"
    printf 'rebooted and back in %.1fs\n' "$(since "$t0")"
    step "Compliance check after the reboot: bond (LACP negotiated again), VLAN, MTU, trusted VFs, hostname, firewalld and SELinux all came back (exit 0)"
    bin/runbook check "$runbook" -i "$inv" "${vars[@]}" --history "$hist" || echo "(exit code $?)"
  fi

  local victim=${hosts}
  victim=$(printf 'lab%02d' "$victim")
  if [ "$kind" = vm ]; then
    step "Someone takes ens1f1 out of the bond on $victim; check reports drift on the bond (exit 4) and changes nothing"
    bin/testenv exec --dir "$dir" "$victim" -- ip link set ens1f1 nomaster
  else
    step "Someone re-enables firewalld on $victim; check reports drift on exactly that task (exit 4) and changes nothing"
    bin/testenv exec --dir "$dir" "$victim" -- systemctl enable --now firewalld
  fi
  bin/runbook check "$runbook" -i "$inv" "${vars[@]}" --history "$hist" --diff || echo "(exit code $?)"

  step "runbook report: what the history holds (last run per host, drift)"
  bin/runbook report --history "$hist" --runs 4

  printf '\n%s: first run %.1fs, second run %.1fs\n' "$what" "$first" "$second"
}

# systemd hosts: the guest's NICs (vm_nic) for each host.
guest_inv() {
  local f="$histdir/guests-$1.hcl"
  for i in $(seq 1 "$1"); do
    printf 'host "lab%02d" {\n  vars = {\n    guest_domain = "bigip1"\n    guest_nics = [\n      { type = "bridge", source = "br-mgmt" },\n      { type = "direct", source = "ens1f0", mode = "passthrough" },\n      { type = "hostdev", source = "0000:3b:02.1", vlan = 101 },\n    ]\n  }\n}\n' "$i"
  done >"$f"
  echo "$f"
}

# vm hosts: each has a netdevsim PF (ens2f0) whose VFs the runbook makes and trusts.
vm_sriov() {
  local f="$histdir/sriov-$1.hcl"
  for i in $(seq 1 "$1"); do
    printf 'host "lab%02d" {\n  vars = {\n    sriov_pf = "ens2f0"\n  }\n}\n' "$i"
  done >"$f"
  echo "$f"
}
vm_vars() { echo "--var network_backend=none --var mtu=9100 --var vlans={internal=100} --var sriov_numvfs=2 -i $(vm_sriov "$1")"; }
# Host names for the inventory (hvNN.lab.test): without one the runbook leaves a host's name
# alone and says so.
vm_names() {
  local f="$histdir/names-$1.hcl"
  for i in $(seq 1 "$1"); do
    printf 'host "lab%02d" {\n  vars = {\n    hostname = "hv%02d.lab.test"\n  }\n}\n' "$i" "$i"
  done >"$f"
  echo "$f"
}
vmsys_vars() {
  echo "--var network_backend=ifupdown --var mtu=9100 --var vlans={internal=100} --var sriov_numvfs=2 -i $(vm_sriov "$1") -i $(guest_inv "$1") -i $(vm_names "$1")"
}

total=$(now)
case "$tier" in
systemd)
  # Debian hosts: ifupdown is their legacy network service; their kernel has no bonding.
  demo systemd "$hosts" "$labdir" --var network_backend=ifupdown --var network_runtime=false -i "$(guest_inv "$hosts")" -i "$(vm_names "$hosts")"
  if [ "${DEMO_VM:-1}" = 1 ]; then
    # shellcheck disable=SC2046 # the words are flags
    demo vmsys 1 "$labdir-vm" $(vmsys_vars 1)
  fi
  ;;
vm)
  # shellcheck disable=SC2046 # the words are flags
  demo vm "$hosts" "$labdir" $(vm_vars "$hosts")
  ;;
*)
  echo "make demo runs on the systemd or vm tier, not $tier" >&2
  exit 1
  ;;
esac
printf '\ndemo done in %.0fs\n' "$(since "$total")"
