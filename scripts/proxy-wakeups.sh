#!/bin/bash
# Diagnostic for docs/BENCHMARKS.md: per request, the syscalls, context switches and CPU
# time of each proxy (meshgate-proxy, nginx, HAProxy) and of the origin behind it, in the
# benchmark's layout (proxy on CPU 1; wrk and the origin nginx on CPU 0), in a namespace of
# its own, and of wrk. Needs root, perf (Debian: linux-perf), and `make` done.
# Usage: scripts/proxy-wakeups.sh        (PATHQ=/big for the 16 KiB file, /small by default;
#        BUSY_POLL_US=50 runs meshgate-proxy with that "busy_poll_us"; CLOSE=1 sends
#        "Connection: close": a new connection per request)
set -u
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/bin/meshgate-proxy}
NS=mg-wakeups-$$; ip netns add $NS; ip -n $NS link set lo up
PATHQ=${PATHQ:-/small}
D=$(mktemp -d /tmp/meshgate-wakeups-XXXXXX); rm -rf $D; mkdir -p $D/www $D/tmp; chmod 755 $D
head -c 16384 /dev/zero | tr '\0' b > $D/www/big
T="client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp; uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;"
echo "master_process off; worker_processes 1; daemon off; error_log $D/o.err; pid $D/o.pid; events { worker_connections 4096; } http { access_log off; $T keepalive_requests 1000000; server { listen 127.0.0.1:9001; root $D/www; location = /small { default_type text/plain; return 200 \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"; } } }" > $D/origin.conf
echo "master_process off; worker_processes 1; daemon off; error_log $D/n.err; pid $D/n.pid; events { worker_connections 4096; } http { access_log off; $T keepalive_requests 1000000; upstream o { server 127.0.0.1:9001; keepalive 256; } server { listen 127.0.0.1:9002; location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection \"\"; } } }" > $D/np.conf
printf 'global\n  nbthread 1\n  maxconn 5000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  http-reuse always\nfrontend fe\n  bind 127.0.0.1:9003\n  default_backend be\nbackend be\n  server o 127.0.0.1:9001\n' > $D/h.cfg
echo '{"busy_poll_us": '${BUSY_POLL_US:-0}', "listeners": [{"name": "web", "address": "127.0.0.1", "port": 9004, "routes": [{"cluster": "o"}]}], "clusters": [{"name": "o", "max_idle_per_endpoint": 256, "endpoints": [{"address": "127.0.0.1", "port": 9001}]}]}' > $D/m.json
ip netns exec $NS taskset -c 0 nginx -c $D/origin.conf & OP=$!
ip netns exec $NS taskset -c 1 nginx -c $D/np.conf & NP=$!
ip netns exec $NS taskset -c 1 haproxy -db -f $D/h.cfg & HP=$!
ip netns exec $NS taskset -c 1 $BIN --config $D/m.json 2>/dev/null & MP=$!
sleep 1
for pair in "meshgate:$MP:9004" "nginx:$NP:9002" "haproxy:$HP:9003"; do
  IFS=: read name pid port <<< "$pair"
  perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock -p $pid -o $D/sut.txt -- sleep 5 &
  PS1=$!
  perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock -p $OP -o $D/orig.txt -- sleep 5 &
  PS2=$!
  out=$(ip netns exec $NS taskset -c 0 perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock -o $D/wrk.txt wrk -t1 -c50 -d5s ${CLOSE:+-H 'Connection: close'} http://127.0.0.1:$port$PATHQ)
  wait $PS1 $PS2
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  sut_sys=$(awk -F, '/sys_enter/ {print $1}' $D/sut.txt); sut_cs=$(awk -F, '/context-switches/ {print $1}' $D/sut.txt); sut_ms=$(awk -F, '/task-clock/ {print $1}' $D/sut.txt)
  o_sys=$(awk -F, '/sys_enter/ {print $1}' $D/orig.txt); o_cs=$(awk -F, '/context-switches/ {print $1}' $D/orig.txt); o_ms=$(awk -F, '/task-clock/ {print $1}' $D/orig.txt)
  w_cs=$(awk -F, '/context-switches/ {print $1}' $D/wrk.txt); w_ms=$(awk -F, '/task-clock/ {print $1}' $D/wrk.txt)
  python3 -c "
r=$reqs
print('%-9s wrk: cs/req %.3f cpu_us/req %.1f' % ('', $w_cs/r, $w_ms*1000/r))
print('%-9s rps %7.0f | SUT: syscalls/req %.2f cs/req %.3f cpu_us/req %.1f | origin: syscalls/req %.2f cs/req %.3f cpu_us/req %.1f' % ('$name', $rps, $sut_sys/r, $sut_cs/r, $sut_ms*1000/r, $o_sys/r, $o_cs/r, $o_ms*1000/r))"
done
kill $MP $NP $HP $OP; wait 2>/dev/null; ip netns del $NS; rm -rf $D
