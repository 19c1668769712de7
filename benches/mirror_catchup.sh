#!/usr/bin/env bash
# A mirror's and a source's catch-up rate, side by side with nats-server: an origin stream is
# filled with N messages of 128 B (`jetlog bench --js`), then a mirror (or a stream sourcing
# the origin) is created and timed until it holds all N. Prints msgs/s and each server's CPU
# per copied message. Loopback only; temporary stores.
#
# usage: benches/mirror_catchup.sh <jetlog binary> [messages, default 1000000] [rounds, default 3]
# environment: NATS_SERVER (default: nats-server on PATH, Debian's 2.9.10), KINDS ("mirror source")
set -euo pipefail
jetlog=${1:?usage: $0 <jetlog binary> [messages] [rounds]}
msgs=${2:-1000000}
rounds=${3:-3}
nats=${NATS_SERVER:-$(command -v nats-server || true)}
kinds=${KINDS:-"mirror source"}
[ -x "$jetlog" ] || { echo "no jetlog binary at $jetlog" >&2; exit 2; }
[ -x "$nats" ] || { echo "no nats-server (set NATS_SERVER)" >&2; exit 2; }
work=$(mktemp -d -t jetlog-mirror.XXXXXX)
trap 'kill $(cat "$work"/pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_server() { # name port
  rm -rf "$work/store" && mkdir -p "$work/store"
  if [ "$1" = nats ]; then
    "$nats" -a 127.0.0.1 --jetstream --store_dir "$work/store" --port "$2" >"$work/server.log" 2>&1 &
  else
    "$jetlog" server --addr 127.0.0.1 --jetstream --store_dir "$work/store" --port "$2" >"$work/server.log" 2>&1 &
  fi
  echo $! >"$work/pid"
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$2") 2>/dev/null && return 0; sleep 0.1; done
  echo "$1 did not start:" >&2; cat "$work/server.log" >&2; return 1
}
stop_server() { local pid; pid=$(cat "$work/pid"); kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14+$15}' /proc/"$(cat "$work/pid")"/stat; }

# Creates the copy and polls its message count every 10 ms; prints the seconds it took.
time_copy() { # port kind
  python3 - "$1" "$2" "$msgs" <<'EOF'
import json, socket, sys, time
port, kind, want = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
f.readline()  # INFO
s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _R.* 1\r\n')
n = 0
def request(subject, body):
    global n
    n += 1
    data = json.dumps(body).encode() if body is not None else b""
    s.sendall(b"PUB %s _R.%d %d\r\n%s\r\n" % (subject.encode(), n, len(data), data))
    while True:
        line = f.readline()
        if line.startswith(b"PING"):
            s.sendall(b"PONG\r\n")
        elif line.startswith(b"MSG"):
            size = int(line.split()[-1])
            payload = f.read(size + 2)[:-2]
            return json.loads(payload)
config = {"name": "COPY", "storage": "file"}
if kind == "mirror":
    config["mirror"] = {"name": "ORIGIN"}
else:
    config["sources"] = [{"name": "ORIGIN"}]
start = time.monotonic()
made = request("$JS.API.STREAM.CREATE.COPY", config)
assert "error" not in made, made
while True:
    info = request("$JS.API.STREAM.INFO.COPY", None)
    if info["state"]["messages"] >= want:
        break
    if time.monotonic() - start > 600:
        sys.exit("copy did not finish in 10 minutes: %s" % info["state"])
    time.sleep(0.01)
print("%.3f" % (time.monotonic() - start))
EOF
}

printf '%-8s %-12s %12s %12s %14s\n' kind server seconds msgs_per_s cpu_ns_per_msg
for kind in $kinds; do
  for server in nats jetlog; do
    best=""; best_cpu=""
    for _ in $(seq "$rounds"); do
      port=$(free_port)
      start_server $server "$port"
      "$jetlog" --server "nats://127.0.0.1:$port" stream add ORIGIN --subjects 'origin.>' >/dev/null
      "$jetlog" --server "nats://127.0.0.1:$port" bench origin.x --js --stream ORIGIN --msgs "$msgs" --size 128 >/dev/null
      before=$(cpu_ticks)
      secs=$(time_copy "$port" "$kind")
      after=$(cpu_ticks)
      stop_server
      cpu_ns=$(( (after - before) * 1000000000 / hz / msgs ))
      if [ -z "$best" ] || awk "BEGIN{exit !($secs < $best)}"; then best=$secs; best_cpu=$cpu_ns; fi
    done
    rate=$(awk "BEGIN{printf \"%.0f\", $msgs / $best}")
    printf '%-8s %-12s %12s %12s %14s\n' "$kind" "$server" "$best" "$rate" "$best_cpu"
  done
done
