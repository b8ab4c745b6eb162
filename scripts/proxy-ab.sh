#!/bin/bash
# A/B of two meshgate-proxy binaries, with nginx and HAProxy alongside, in the benchmark's
# layout (proxies on CPU 1; the load generator and the origin nginx on CPU 0), interleaved
# over ROUNDS rounds in a namespace of its own. Prints, per proxy, the median req/s and
# the median proxy CPU per request (utime + stime over the run / requests).
# Usage: scripts/proxy-ab.sh OLD_BINARY NEW_BINARY
#   PATHQ=/small (100-byte `return 200`) or /big (16 KiB file); H2=1 for h2c with h2load;
#   ROUNDS=3, DUR=5 (seconds per run). Needs root, nginx, haproxy, wrk, h2load.
set -u
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-5}; PATHQ=${PATHQ:-/small}; H2=${H2:-0}
NS=mg-ab-$$; ip netns add $NS; ip -n $NS link set lo up
D=$(mktemp -d /tmp/meshgate-ab-XXXXXX); mkdir -p $D/www $D/tmp; chmod 755 $D
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; ip netns del $NS; rm -rf $D' EXIT
head -c 16384 /dev/zero | tr '\0' b > $D/www/big
BODY=$(head -c 100 /dev/zero | tr '\0' a)
T="client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp; uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;"
echo "master_process off; worker_processes 1; daemon off; error_log $D/o.err; pid $D/o.pid; events { worker_connections 4096; } http { access_log off; $T keepalive_requests 1000000; server { listen 127.0.0.1:9001 backlog=4096; root $D/www; location = /small { default_type text/plain; return 200 \"$BODY\"; } } }" > $D/origin.conf
NGX_LISTEN="listen 127.0.0.1:9002 backlog=4096;"; HAP_BIND="bind 127.0.0.1:9003"
if [ "$H2" = 1 ]; then NGX_LISTEN="listen 127.0.0.1:9002 http2;"; HAP_BIND="bind 127.0.0.1:9003 proto h2"; fi
echo "master_process off; worker_processes 1; daemon off; error_log $D/n.err; pid $D/n.pid; events { worker_connections 4096; } http { access_log off; $T keepalive_requests 1000000; upstream o { server 127.0.0.1:9001; keepalive 256; } server { $NGX_LISTEN location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection \"\"; } } }" > $D/np.conf
printf "global\n  nbthread 1\n  maxconn 5000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  http-reuse always\nfrontend fe\n  $HAP_BIND\n  default_backend be\nbackend be\n  server o 127.0.0.1:9001\n" > $D/h.cfg
for p in 9004 9005; do
  echo '{"listeners": [{"name": "web", "address": "127.0.0.1", "port": '$p', "routes": [{"cluster": "o"}]}], "clusters": [{"name": "o", "max_idle_per_endpoint": 256, "endpoints": [{"address": "127.0.0.1", "port": 9001}]}]}' > $D/m$p.json
done
ip netns exec $NS taskset -c 0 nginx -c $D/origin.conf & OP=$!
ip netns exec $NS taskset -c 1 nginx -c $D/np.conf & NP=$!
ip netns exec $NS taskset -c 1 haproxy -db -f $D/h.cfg & HP=$!
ip netns exec $NS taskset -c 1 "$A" --config $D/m9004.json 2>/dev/null & M1=$!
ip netns exec $NS taskset -c 1 "$B" --config $D/m9005.json 2>/dev/null & M2=$!
sleep 1
ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
HZ=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
  for pair in "old:$M1:9004" "new:$M2:9005" "nginx:$NP:9002" "haproxy:$HP:9003"; do
    IFS=: read -r name pid port <<< "$pair"
    t0=$(ticks "$pid")
    if [ "$H2" = 1 ]; then
      out=$(ip netns exec $NS taskset -c 0 h2load -c10 -m10 -D "$DUR" "http://127.0.0.1:$port$PATHQ")
      reqs=$(echo "$out" | awk '/^requests:/ {print $4}'); rps=$(echo "$out" | awk '/^finished in/ {print $4}')
    else
      out=$(ip netns exec $NS taskset -c 0 wrk -t1 -c50 -d"${DUR}s" "http://127.0.0.1:$port$PATHQ")
      reqs=$(echo "$out" | awk '/requests in/ {print $1}'); rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    fi
    t1=$(ticks "$pid")
    echo "$name $rps $(( (t1 - t0) * 1000000 / HZ )) $reqs"
  done
done > $D/res.txt
python3 - "$D/res.txt" <<'PY'
import statistics as st, sys
runs = {}
for line in open(sys.argv[1]):
    name, rps, cpu_us, reqs = line.split()
    runs.setdefault(name, []).append((float(rps), float(cpu_us) / max(1, int(reqs))))
for name, v in runs.items():
    print("%-8s median req/s %8.0f  CPU/request %5.1f us   (req/s per round: %s)" % (
        name, st.median(x[0] for x in v), st.median(x[1] for x in v), " ".join("%.0f" % x[0] for x in v)))
# The machine's speed drifts between rounds; ratios within a round are steadier.
for base in ("old", "nginx", "haproxy"):
    r = [n[0] / b[0] for n, b in zip(runs["new"], runs[base])]
    print("new / %-7s median of per-round req/s ratios %.3f  (%s)" % (
        base, st.median(r), " ".join("%.2f" % x for x in r)))
PY
