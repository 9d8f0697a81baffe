#!/bin/bash
# Measures lab up/down time and memory per host: testenv/testdata/measure.sh TIER N
# (as root, after make build; needs bc and python3).
T=$1 N=$2 D=/tmp/rbmeasure-$T-$N
BIN=${TESTENV:-bin/testenv}
used() { awk '/MemTotal/{t=$2} /MemAvailable/{a=$2} END{print t-a}' /proc/meminfo; }
b=$(used)
s=$(date +%s.%N)
$BIN up --tier $T --hosts $N --dir $D >/dev/null || exit 1
e=$(date +%s.%N)
sleep 5
a=$(used)
# PSS of every process of the lab: by netns (ns tier) or by the containers' cgroups (systemd tier)
pids=$(python3 -c "
import json;s=json.load(open('$D/state.json'))
print(' '.join(str(h['main']['pid']) for h in s['hosts']))")
if [ $T = ns ]; then all=$(for ns in $(ip netns list | awk '{print $1}' | grep "^$(python3 -c "import json;print(json.load(open('$D/state.json'))['prefix'])")-lab"); do ip netns pids $ns; done)
else all=$(python3 -c "
import json,os
s=json.load(open('$D/state.json'))
for h in s['hosts']:
  for cg in h['cgroups'][:1]:
    for r,ds,fs in os.walk(cg):
      for p in open(os.path.join(r,'cgroup.procs')).read().split(): print(p)
"); fi
pss=0; n=0; for p in $all; do v=$(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup 2>/dev/null); [ -n "$v" ] && pss=$((pss+v)) && n=$((n+1)); done
s2=$(date +%s.%N)
$BIN down --dir $D 2>/dev/null
e2=$(date +%s.%N)
printf "%s N=%d up=%.2fs down=%.2fs procs=%d pss_total=%dKiB pss_per_host=%.1fMiB used_delta_per_host=%.1fMiB\n" $T $N $(echo "$e-$s"|bc) $(echo "$e2-$s2"|bc) $n $pss $(echo "$pss/$N/1024"|bc -l) $(echo "($a-$b)/$N/1024"|bc -l)
