#!/usr/bin/env bash
# JetStream publishes through a three-server cluster, side by side: nats-server (Debian's
# build) and jetlog, each a full mesh on 127.0.0.1 with JetStream on every server, driven by
# the shared load generator (../shared/bench/jsbench.go, async publish, 128 B, window 500) to
# an R1 file stream. The publisher is connected to a server that does NOT hold the stream, so
# every publish and its acknowledgement cross a route; a run where the stream landed on the
# publisher's own server is repeated (nats-server places R1 streams by free space).
# Usage: docs/bench/cluster_js.sh [JETLOG_BINARY] [ROUNDS]   (from the project root)
# Prints msgs/s, the ratio jetlog / nats-server, and the CPU all three servers spent per
# message (user+system, during the measured phase).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
jetlog=${1:-target/release/jetlog}
rounds=${2:-2}
n=${N:-200000}
client_base=14550
route_base=16550
cluster_name=benchjs
# shellcheck source=cluster_common.sh
source "$here/cluster_common.sh"
leader() { "$jetlog" -s "$(url 2)" stream info BENCH --json 2>/dev/null | sed -n 's/.*"leader": *"\(s[0-9]\)".*/\1/p' | head -1; }

declare -A best cpu
for r in $(seq "$rounds"); do
  for s in nats jetlog; do
    for attempt in 1 2 3 4; do
      start_cluster $s
      t0=$(cpu_ticks)
      out=$("$work/jsbench" -url "$(url 2)" -mode jspub -n "$n" || true)
      t1=$(cpu_ticks)
      where=$(leader)
      stop_cluster
      echo "$s attempt $attempt: stream on ${where:-?}, publisher on s2: $out" >>"$work/raw.log"
      [ "$where" = s2 ] && continue
      v=$(echo "$out" | sed -n 's/.*rate=\([0-9]*\).*/\1/p'); v=${v:-0}
      c=$(( (t1 - t0) * 1000000000 / hz / n ))
      [ "${best[$s]:-0}" -ge "$v" ] || best[$s]=$v
      { [ "${cpu[$s]:-0}" -gt 0 ] && [ "${cpu[$s]}" -le "$c" ]; } || cpu[$s]=$c
      break
    done
  done
done
nr=${best[nats]:-0}; jr=${best[jetlog]:-0}; nc=${cpu[nats]:-0}; jc=${cpu[jetlog]:-0}
printf '%-12s %12s %12s %7s %12s %12s %9s\n' mode nats-server jetlog ratio nats_cpu_ns jetlog_cpu_ns cpu_ratio
printf '%-12s %12s %12s %7s %12s %12s %9s\n' jspub-route "$nr" "$jr" \
  "$(awk -v a="$jr" -v b="$nr" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }')" "$nc" "$jc" \
  "$(awk -v a="$jc" -v b="$nc" 'BEGIN{ if (a>0) printf "%.2f", b/a; else print "-" }')"
echo; echo "runs:"; cat "$work/raw.log"
