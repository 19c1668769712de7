#!/usr/bin/env bash
# Replicated (R3) JetStream on three servers, side by side: nats-server (Debian's build) and
# jetlog, each a full mesh on 127.0.0.1 with JetStream on every server and one R3 file
# stream, driven by the shared load generator (../shared/bench/jsbench.go, 128 B):
#   jspub      async publish, window 500 (N messages)
#   jspubsync  one publish at a time, each waiting for its ack (SYNC_N messages): p50/p99
#   jsconsume  a pull consumer fetching and acking what jspub stored
# The publisher and the consumer connect to s2. jetlog runs with its defaults (sync always: a
# quorum's Raft logs are flushed before an entry commits; each replica's store syncs at most
# every second); nats-server with its own (it does not fsync before acknowledging: it syncs
# every 2 minutes).
# Usage: docs/bench/cluster_r3.sh [JETLOG_BINARY] [ROUNDS]   (from the project root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
jetlog=${1:-target/release/jetlog}
rounds=${2:-2}
n=${N:-100000}
sync_n=${SYNC_N:-2000}
client_base=14650
route_base=16650
cluster_name=benchr3
# shellcheck source=cluster_common.sh
source "$here/cluster_common.sh"
bench() { # mode count -> output line; the servers' CPU per message goes to $work/ns
  local t0 t1 out
  t0=$(cpu_ticks)
  out=$("$work/jsbench" -url "$(url 2)" -mode "$1" -n "$2" -replicas 3 || true)
  t1=$(cpu_ticks)
  echo $(( (t1 - t0) * 1000000000 / hz / $2 )) >"$work/ns"
  echo "$out"
}
rate() { echo "$1" | sed -n 's/.*rate=\([0-9]*\).*/\1/p'; }
p50() { echo "$1" | sed -n 's/.*p50=\([^ ]*\).*/\1/p'; }

declare -A pub cons sync lat cpub ccons
for r in $(seq "$rounds"); do
  for s in nats jetlog; do
    start_cluster $s
    out=$(bench jspub "$n"); ns_per_msg=$(cat "$work/ns"); echo "$s jspub: $out (cpu ${ns_per_msg} ns/msg)" >>"$work/raw.log"
    v=$(rate "$out"); v=${v:-0}
    if [ "${pub[$s]:-0}" -lt "$v" ]; then pub[$s]=$v; cpub[$s]=$ns_per_msg; fi
    out=$(bench jsconsume "$n"); ns_per_msg=$(cat "$work/ns"); echo "$s jsconsume: $out (cpu ${ns_per_msg} ns/msg)" >>"$work/raw.log"
    v=$(rate "$out"); v=${v:-0}
    if [ "${cons[$s]:-0}" -lt "$v" ]; then cons[$s]=$v; ccons[$s]=$ns_per_msg; fi
    out=$(bench jspubsync "$sync_n"); echo "$s jspubsync: $out" >>"$work/raw.log"
    v=$(rate "$out"); v=${v:-0}
    if [ "${sync[$s]:-0}" -lt "$v" ]; then sync[$s]=$v; lat[$s]=$(p50 "$out"); fi
    stop_cluster
  done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }'; }
printf '%-10s %12s %12s %7s %12s %12s %9s\n' mode nats-server jetlog ratio nats_cpu_ns jetlog_cpu_ns cpu_ratio
printf '%-10s %12s %12s %7s %12s %12s %9s\n' jspub "${pub[nats]:-0}" "${pub[jetlog]:-0}" "$(ratio "${pub[jetlog]:-0}" "${pub[nats]:-0}")" \
  "${cpub[nats]:-0}" "${cpub[jetlog]:-0}" "$(ratio "${cpub[nats]:-0}" "${cpub[jetlog]:-0}")"
printf '%-10s %12s %12s %7s %12s %12s %9s\n' jsconsume "${cons[nats]:-0}" "${cons[jetlog]:-0}" "$(ratio "${cons[jetlog]:-0}" "${cons[nats]:-0}")" \
  "${ccons[nats]:-0}" "${ccons[jetlog]:-0}" "$(ratio "${ccons[nats]:-0}" "${ccons[jetlog]:-0}")"
printf '%-10s %12s %12s %7s   p50 nats-server %s, jetlog %s\n' jspubsync "${sync[nats]:-0}" "${sync[jetlog]:-0}" \
  "$(ratio "${sync[jetlog]:-0}" "${sync[nats]:-0}")" "${lat[nats]:-?}" "${lat[jetlog]:-?}"
echo; echo "runs:"; cat "$work/raw.log"
