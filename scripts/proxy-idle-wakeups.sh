#!/bin/bash
# How often an idle meshgate-proxy wakes up: each binary given holds N idle client
# connections (each with its 5-minute header timeout armed) and nothing else happens; the script
# prints the process's voluntary context switches per second over DUR seconds (each
# epoll_wait that returns after sleeping is one). Both run at once, in a namespace of
# their own, so they see the same machine. Needs root and `make`.
# Usage: scripts/proxy-idle-wakeups.sh BINARY [BINARY...]   (N=1000, DUR=10)
set -u
[ $# -ge 1 ] || { echo "usage: $0 BINARY [BINARY...]" >&2; exit 2; }
N=${N:-1000}; DUR=${DUR:-10}
NS=mg-idle-$$; ip netns add $NS; ip -n $NS link set lo up
D=$(mktemp -d /tmp/meshgate-idle-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; ip netns del $NS; rm -rf $D' EXIT
pids=(); ports=()
port=9100
for bin in "$@"; do
  port=$((port + 1))
  echo '{"listeners": [{"name": "web", "address": "127.0.0.1", "port": '$port', "routes": [{"cluster": "o"}]}], "clusters": [{"name": "o", "endpoints": [{"address": "127.0.0.1", "port": 9}]}], "limits": {"header_timeout_ms": 300000, "idle_timeout_ms": 300000}}' > $D/$port.json
  ip netns exec $NS taskset -c 1 "$(realpath "$bin")" --config $D/$port.json 2>/dev/null &
  pids+=($!); ports+=($port)
done
sleep 1
# N idle connections to each proxy, held open while we count.
ip netns exec $NS python3 -c "
import socket, sys, time
socks = [socket.create_connection(('127.0.0.1', p)) for p in map(int, sys.argv[2:]) for _ in range(int(sys.argv[1]))]
time.sleep(3600)" $N "${ports[@]}" &
sleep 2
# Summed over the process's threads (the workers are threads of their own).
vcs() { cat /proc/$1/task/*/status | awk '/^voluntary_ctxt_switches/ {n += $2} END {print n}'; }
before=(); for p in "${pids[@]}"; do before+=($(vcs $p)); done
sleep $DUR
i=0
for bin in "$@"; do
  after=$(vcs ${pids[$i]})
  echo "$bin: $N idle connections, $(( (after - ${before[$i]}) / DUR )) wakeups/s"
  i=$((i + 1))
done
