#!/bin/bash
# User-space instructions per request of meshgate-proxy binaries, counted by valgrind's
# callgrind: repeatable whatever else the machine does, unlike req/s on a shared VM, so a
# change of a few percent in the proxy's own code shows (the kernel's share, about half of
# the CPU per request, is not counted). Each binary serves N1 and then N2 requests in two
# runs; the difference over N2 - N1 cancels start-up and shutdown. The origin is nginx
# answering `return 200` with 100 bytes; the load is h2load, HTTP/1.1 keep-alive over 10
# connections (`--h1`) or, with H2=1, h2c over 10 connections x 10 streams, in a namespace
# of its own. (wrk cannot stop after a number of requests.)
# Usage: scripts/proxy-instructions.sh BINARY...   N1=2000 N2=12000. Needs root, valgrind,
# nginx, h2load.
set -u
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
N1=${N1:-2000}; N2=${N2:-12000}; H2=${H2:-0}
NS=mg-instr-$$; ip netns add $NS; ip -n $NS link set lo up
D=$(mktemp -d /tmp/meshgate-instr-XXXXXX); mkdir -p $D/tmp; chmod 755 $D
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; ip netns del $NS; rm -rf $D' EXIT
BODY=$(head -c 100 /dev/zero | tr '\0' a)
T="client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp; uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;"
echo "master_process off; worker_processes 1; daemon off; error_log $D/o.err; pid $D/o.pid; events { worker_connections 4096; } http { access_log off; $T keepalive_requests 1000000; server { listen 127.0.0.1:9001 backlog=4096; location = /small { default_type text/plain; return 200 \"$BODY\"; } } }" > $D/origin.conf
echo '{"listeners": [{"name": "web", "address": "127.0.0.1", "port": 9004, "routes": [{"cluster": "o"}]}], "clusters": [{"name": "o", "max_idle_per_endpoint": 256, "endpoints": [{"address": "127.0.0.1", "port": 9001}]}]}' > $D/m.json
ip netns exec $NS nginx -c $D/origin.conf & OP=$!
ready() { for _ in $(seq 200); do ip netns exec $NS bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
ready 9001 || { echo "origin did not start" >&2; exit 1; }
# One run: the proxy under callgrind serves $2 requests; prints its instruction total.
run() {
  local bin=$1 n=$2 out=$D/cg.$$.$RANDOM
  ip netns exec $NS valgrind --tool=callgrind --callgrind-out-file=$out "$bin" --config $D/m.json \
    >/dev/null 2>$D/vg.err & local vp=$!
  ready 9004 || { echo "proxy did not start: $(tail -3 $D/vg.err)" >&2; exit 1; }
  local mode="-m10"; [ "$H2" = 1 ] || mode="--h1"
  ip netns exec $NS h2load -c10 $mode -n "$n" http://127.0.0.1:9004/small > $D/load.out
  grep -q " $n succeeded" $D/load.out || { echo "h2load: $(grep requests: $D/load.out)" >&2; exit 1; }
  kill -TERM $vp; wait $vp
  awk '/^summary:/ {print $2}' $out
}
printf "%-40s %s\n" binary "instructions per request (user space)"
for bin in "$@"; do
  a=$(run "$(realpath "$bin")" "$N1"); b=$(run "$(realpath "$bin")" "$N2")
  printf "%-40s %d\n" "$bin" $(( (b - a) / (N2 - N1) ))
done
