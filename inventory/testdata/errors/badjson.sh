#!/bin/sh
# ERROR@-1: Invalid inventory script output
echo '{"web": {"hosts": ["web1",]}}'
