#!/usr/bin/env bash
# make demo: start lab hosts, run the BIG-IP VE hypervisor runbook against them, show the
# results. Usage: scripts/demo.sh LABDIR HOSTS TIER. KEEP_LAB=1 leaves the lab up afterwards.
set -euo pipefail
labdir=${1:-$PWD/lab}
hosts=${2:-3}
tier=${3:-systemd}
runbook=runbooks/bigip-ve-kvm

if [ "$(id -u)" != 0 ]; then
  echo "make demo needs root: the lab makes network namespaces and containers." >&2
  exit 1
fi
scripts/install-deps.sh
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  if [ "${KEEP_LAB:-0}" = 1 ]; then
    echo "The lab stays up (KEEP_LAB=1): bin/testenv status --dir $labdir; make lab-down LABDIR=$labdir"
  else
    step "Tearing the lab down"
    bin/testenv down --dir "$labdir"
  fi
}

step "Starting $hosts $tier-tier lab hosts in $labdir (the first systemd-tier start builds a Debian base tree: about a minute)"
bin/testenv up --tier "$tier" --hosts "$hosts" --dir "$labdir"
trap cleanup EXIT

step "The lab's inventory"
bin/runbook inventory -i "$labdir/inventory.hcl" --graph

step "Each host is a real sshd with its own host key, reached through 127.0.0.1 with strict host-key checking"
port=$(sed -n 's/^ *port *= *\([0-9]*\)/\1/p' "$labdir/inventory.hcl" | head -n1)
ssh -F none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$labdir/known_hosts" \
  -i "$labdir/id_ed25519" -p "$port" root@127.0.0.1 \
  'echo "$(hostname): NICs $(ls /sys/class/net | tr "\n" " ")"; systemctl is-active NetworkManager firewalld 2>/dev/null || true'

step "Validating $runbook against the lab inventory"
bin/runbook validate "$runbook" -i "$labdir/inventory.hcl"

step "First run: runbook exec $runbook (the helper is pushed to each host on first contact)"
start=$(date +%s.%N)
bin/runbook exec "$runbook" -i "$labdir/inventory.hcl" || echo "(exit code $?)"
first=$(echo "$(date +%s.%N) - $start" | bc)

step "Second run: nothing left to change"
start=$(date +%s.%N)
bin/runbook exec "$runbook" -i "$labdir/inventory.hcl" || echo "(exit code $?)"
second=$(echo "$(date +%s.%N) - $start" | bc)

step "Compliance check: runbook check $runbook (changes nothing; exit 4 would mean drift)"
bin/runbook check "$runbook" -i "$labdir/inventory.hcl" || echo "(exit code $?)"

printf '\nfirst run %.1fs, second run %.1fs\n' "$first" "$second"
