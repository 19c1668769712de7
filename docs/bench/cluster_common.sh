# Sourced by cluster_js.sh and cluster_r3.sh: checks the jetlog binary and the load
# generator, builds the generator in a work directory removed on exit, starts and stops a
# three-server cluster of either kind (nats-server or jetlog, JetStream on every server),
# and sums the servers' CPU time. The sourcing script sets `here`, `jetlog`, `client_base`,
# `route_base` and `cluster_name` first.
[ -x "$jetlog" ] || { echo "no jetlog binary at $jetlog (cargo build --release first)" >&2; exit 2; }
jsbench_src="$here/../../../shared/bench/jsbench.go"
[ -f "$jsbench_src" ] || { echo "no load generator at $jsbench_src" >&2; exit 2; }
work=$(mktemp -d -t "jetlog-$cluster_name.XXXXXX")
trap 'for p in "$work"/pid.*; do kill "$(cat "$p")" 2>/dev/null || true; done; rm -rf "$work"' EXIT
mkdir -p "$work/src/jsbench" && cp "$jsbench_src" "$work/src/jsbench/main.go"
(cd "$work/src/jsbench" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/gocache" go build -o "$work/jsbench" .)
client_port() { echo $((client_base + $1)); }
route_port() { echo $((route_base + $1)); }
url() { echo "nats://127.0.0.1:$(client_port "$1")"; }

start_cluster() { # kind
  for i in 1 2 3; do
    rm -rf "$work/store.$i"
    local args=(-a 127.0.0.1 -p "$(client_port $i)" -n "s$i" --cluster "nats://127.0.0.1:$(route_port $i)"
      --cluster_name "$cluster_name" --routes "nats-route://127.0.0.1:$(route_port 1)" --jetstream --store_dir "$work/store.$i")
    if [ "$1" = nats ]; then nats-server "${args[@]}" >"$work/server.$i.log" 2>&1 &
    else "$jetlog" server "${args[@]}" >"$work/server.$i.log" 2>&1 &
    fi
    echo $! >"$work/pid.$i"
  done
  # JetStream is ready once its account info is answered without an error.
  for _ in $(seq 300); do
    if "$jetlog" -s "$(url 2)" req '$JS.API.INFO' '' 2>/dev/null | grep -q '"api"'; then sleep 1; return 0; fi
    sleep 0.1
  done
  echo "$1 cluster's JetStream did not start:" >&2; tail -5 "$work"/server.*.log >&2; return 1
}
stop_cluster() {
  for i in 1 2 3; do
    local pid; pid=$(cat "$work/pid.$i"); kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  done
}
cpu_ticks() {
  local sum=0
  for i in 1 2 3; do sum=$(( sum + $(awk '{print $14+$15}' /proc/"$(cat "$work/pid.$i")"/stat 2>/dev/null || echo 0) )); done
  echo $sum
}
hz=$(getconf CLK_TCK)
