#!/usr/bin/env bash
# Many connections and subscriptions on one server: opens C connections holding S
# subscriptions each (examples/many_connections.rs), reports the server's threads, RSS and
# descriptors while they are held, and core publish throughput to one subscriber before and
# after they were opened (the publish path's cost must not grow with the subscriptions).
# Usage: docs/bench/many_connections.sh [C] [S] [SERVER_BINARY]   (from the project root)
# SERVER_BINARY is jetlog (target/release/jetlog) or a nats-server binary.
set -euo pipefail
connections=${1:-10000}
subs=${2:-100}
bin=${3:-target/release/jetlog}
port=${PORT:-14323}
work=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null || true; kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --release --example many_connections -q
load=target/release/examples/many_connections
case "$(basename "$bin")" in
  nats-server*) "$bin" -a 127.0.0.1 -p "$port" >"$work/log" 2>&1 & ;;
  *) "$bin" server -a 127.0.0.1 -p "$port" --store_dir "$work/store" >"$work/log" 2>&1 & ;;
esac
pid=$!
sleep 0.5
mkfifo "$work/hold"
"$load" "127.0.0.1:$port" "$connections" "$subs" <"$work/hold" >"$work/out" &
load_pid=$!
exec 3>"$work/hold"
until grep -q holding "$work/out" 2>/dev/null; do
  kill -0 "$load_pid" || { cat "$work/out"; exit 1; }
  sleep 0.5
done
cat "$work/out"
threads=$(awk '/^Threads/ {print $2}' "/proc/$pid/status")
rss=$(awk '/^VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
fds=$(ls "/proc/$pid/fd" | wc -l)
echo "server while held: threads=$threads rss_mib=$rss fds=$fds"
exec 3>&-
wait "$load_pid"
