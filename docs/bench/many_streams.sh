#!/usr/bin/env bash
# Many streams on one server: creates N streams with a message and a durable consumer each
# (examples/many_streams.rs), then reports the server's threads, RSS and open descriptors,
# the create rate per thousand, and how long a restart takes until every stream answers.
# Usage: docs/bench/many_streams.sh [N] [SERVER_BINARY]   (from the project root)
# SERVER_BINARY is jetlog (the default, target/release/jetlog) or a nats-server binary, which
# is started with JetStream on the same kind of store directory, for the side-by-side table.
# LOAD_ARGS=--no-consumers creates the streams without consumers.
set -euo pipefail
n=${1:-2000}
bin=${2:-target/release/jetlog}
port=${PORT:-14322}
store=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$store"' EXIT
cargo build --release --example many_streams -q
load=target/release/examples/many_streams
url="nats://127.0.0.1:$port"

start() {
  case "$(basename "$bin")" in
    nats-server*) "$bin" -js -sd "$store" -a 127.0.0.1 -p "$port" >"$store.log" 2>&1 & ;;
    *) "$bin" server -a 127.0.0.1 -p "$port" --store_dir "$store" >"$store.log" 2>&1 & ;;
  esac
  pid=$!
}
stats() {
  local threads rss fds
  threads=$(awk '/^Threads/ {print $2}' "/proc/$pid/status")
  rss=$(awk '/^VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  echo "$1: threads=$threads rss_mib=$rss fds=$fds"
}

start
"$load" "$url" "$n" ${LOAD_ARGS:-}
stats "after create ($n streams)"
kill -TERM "$pid"; wait "$pid" || true
t0=$(date +%s.%N)
start
"$load" "$url" "$n" --check
t1=$(date +%s.%N)
echo "restart to every stream answering: $(echo "$t1 - $t0" | bc) s"
stats "after restart"
