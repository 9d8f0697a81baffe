#!/bin/sh
# An inventory script: --list prints groups and _meta.hostvars.
case "$1" in
--list)
echo '{
  "web": {"hosts": ["w2", "w1"], "vars": {"http_port": 8080, "nested": {"a": [1, 2]}}, "children": ["canary"]},
  "canary": {"hosts": ["w3"], "vars": {"ansible_group_priority": 5, "weight": 1}},
  "db": ["d1", "d2"],
  "solo": {"var": "shorthand: a host named like its group"},
  "all": {"vars": {"ntp": "pool"}},
  "_meta": {"hostvars": {"w1": {"ansible_host": "10.0.0.1", "http_port": 9090}, "d2": {"big": 12345678901234567890}}}
}'
;;
--host) echo '{}' ;;
*) exit 2 ;;
esac
