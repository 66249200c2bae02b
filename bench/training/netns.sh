#!/usr/bin/env bash
# An emulated home network for the training comparison, built from Linux network namespaces.
#
#   hub namespace  emcb-hub : bridge ebbr0 = 10.77.0.1/24   (the EMC coordinator, or the DDP rendezvous store)
#   worker ns      emcb-wK  : veth0        = 10.77.0.(10+K)/24, K = 1..N  (one EMC node or one DDP rank each)
#
# Each worker is joined to the hub's bridge by a veth pair (veth0 in the worker, ebhK in the hub) with
#   tc qdisc add dev X root tbf rate $RATE burst $BURST latency $LATENCY
# on BOTH ends, so every worker's upload and its download are each capped at $RATE (default 20mbit).
# Worker-to-worker traffic (DDP's gloo ring) crosses two capped links, like two homes talking to each other.
# Only addresses in 10.77.0.0/24 are used, and nothing is routed outside the namespaces.
#
# Usage (root):
#   netns.sh up K              create the hub and K workers (w1..wK); `down` first if they exist
#   netns.sh down              delete every emcb-* namespace (and with them the veths and the bridge)
#   netns.sh exec NAME cmd...  run cmd in namespace NAME (hub, w1, w2, ...)
#   netns.sh bytes NAME        JSON {"name","iface","tx_bytes","rx_bytes"} of NAME's link (hub: its bridge)
#   netns.sh ip NAME           the address of NAME (hub: 10.77.0.1, wK: 10.77.0.(10+K))
#   netns.sh list              the emcb-* namespaces that exist
#   netns.sh rate [NAME] [SECONDS]
#                              measure NAME's (default w1) upload and download through the caps with a
#                              Python TCP stream to/from the hub (default 5 s each way); prints Mbit/s as JSON
set -euo pipefail

PREFIX=emcb
HUB="${PREFIX}-hub"
BRIDGE=ebbr0
SUBNET_PREFIX=10.77.0
HUB_IP="${SUBNET_PREFIX}.1"
RATE="${EMCB_RATE:-20mbit}"
BURST="${EMCB_BURST:-32kbit}"
LATENCY="${EMCB_LATENCY:-400ms}"
PYTHON="${PYTHON:-/usr/bin/python3}"

die() { echo "netns.sh: $*" >&2; exit 2; }

ns_of() {
  case "$1" in
    hub) echo "$HUB" ;;
    w[0-9]*) echo "${PREFIX}-$1" ;;
    *) die "unknown name '$1' (hub, w1, w2, ...)" ;;
  esac
}

ip_of() {
  case "$1" in
    hub) echo "$HUB_IP" ;;
    w[0-9]*) local k="${1#w}"; echo "${SUBNET_PREFIX}.$((10 + k))" ;;
    *) die "unknown name '$1'" ;;
  esac
}

iface_of() {
  case "$1" in
    hub) echo "$BRIDGE" ;;
    *) echo veth0 ;;
  esac
}

list() { ip netns list | awk '{print $1}' | grep -E "^${PREFIX}-" || true; }

down() {
  local ns
  for ns in $(list); do
    # Deleting a namespace deletes its veths (and their peers) and the bridge.
    ip netns pids "$ns" 2>/dev/null | while read -r pid; do echo "netns.sh: warning: pid $pid still runs in $ns" >&2; done
    ip netns delete "$ns"
  done
}

cap() { # ns dev
  ip netns exec "$1" tc qdisc replace dev "$2" root tbf rate "$RATE" burst "$BURST" latency "$LATENCY"
}

up() {
  local k="$1" i ns
  [[ "$k" =~ ^[0-9]+$ ]] && (( k >= 1 && k <= 200 )) || die "up needs K in 1..200"
  [[ -z "$(list)" ]] || die "namespaces exist already ($(list | tr '\n' ' ')); run 'netns.sh down' first"
  trap 'echo "netns.sh: up failed; cleaning up" >&2; down' ERR
  ip netns add "$HUB"
  ip -n "$HUB" link set lo up
  ip -n "$HUB" link add "$BRIDGE" type bridge
  ip -n "$HUB" addr add "${HUB_IP}/24" dev "$BRIDGE"
  ip -n "$HUB" link set "$BRIDGE" up
  for ((i = 1; i <= k; i++)); do
    ns="${PREFIX}-w${i}"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add veth0 type veth peer name "ebh${i}" netns "$HUB"
    ip -n "$ns" addr add "$(ip_of "w${i}")/24" dev veth0
    ip -n "$ns" link set veth0 up
    ip -n "$HUB" link set "ebh${i}" master "$BRIDGE"
    ip -n "$HUB" link set "ebh${i}" up
    cap "$ns" veth0          # the worker's upload
    cap "$HUB" "ebh${i}"     # the worker's download
  done
  trap - ERR
  echo "netns.sh: hub ${HUB} (${HUB_IP}) and ${k} workers behind ${RATE} links (tbf burst ${BURST} latency ${LATENCY} on both ends)"
}

bytes() {
  local name="$1" ns iface
  ns="$(ns_of "$name")"; iface="$(iface_of "$name")"
  local tx rx
  tx="$(ip netns exec "$ns" cat "/sys/class/net/${iface}/statistics/tx_bytes")"
  rx="$(ip netns exec "$ns" cat "/sys/class/net/${iface}/statistics/rx_bytes")"
  printf '{"name":"%s","iface":"%s","tx_bytes":%s,"rx_bytes":%s}\n' "$name" "$iface" "$tx" "$rx"
}

# A small iperf: a TCP sink (or source) in the hub, the other end in the worker.
RATE_PY='
import json, socket, sys, time
mode, host, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
chunk = b"\0" * 65536
def pump_out(s):
    end, sent = time.time() + seconds, 0
    while time.time() < end:
        sent += s.send(chunk)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
def pump_in(s):
    n, t0 = 0, None
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        if t0 is None:
            t0 = time.time()
        n += len(b)
    return n, time.time() - t0
if mode in ("sink", "source"):
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port)); srv.listen(1); srv.settimeout(30)
    print("ready", flush=True)
    c, _ = srv.accept()
    if mode == "sink":
        n, dt = pump_in(c); c.close()
        print(json.dumps({"bytes": n, "seconds": round(dt, 3), "mbit_per_s": round(n * 8 / dt / 1e6, 2)}), flush=True)
    else:
        pump_out(c); c.close()
else:
    s = socket.create_connection((host, port), timeout=30)
    if mode == "send":
        pump_out(s)
    else:
        n, dt = pump_in(s)
        print(json.dumps({"bytes": n, "seconds": round(dt, 3), "mbit_per_s": round(n * 8 / dt / 1e6, 2)}), flush=True)
    s.close()
'

rate() {
  local name="${1:-w1}" seconds="${2:-5}" ns port=47001 out up_json down_json
  ns="$(ns_of "$name")"
  out="$(mktemp -d /tmp/emcb-rate.XXXXXX)"
  # upload: the worker sends, the hub receives
  ip netns exec "$HUB" "$PYTHON" -c "$RATE_PY" sink "$HUB_IP" "$port" "$seconds" > "$out/up" &
  local srv=$!
  for _ in $(seq 50); do grep -q ready "$out/up" 2>/dev/null && break; sleep 0.1; done
  ip netns exec "$ns" "$PYTHON" -c "$RATE_PY" send "$HUB_IP" "$port" "$seconds"
  wait "$srv"
  up_json="$(grep '{' "$out/up")"
  # download: the hub sends, the worker receives
  ip netns exec "$HUB" "$PYTHON" -c "$RATE_PY" source "$HUB_IP" "$((port + 1))" "$seconds" > "$out/down" &
  srv=$!
  for _ in $(seq 50); do grep -q ready "$out/down" 2>/dev/null && break; sleep 0.1; done
  down_json="$(ip netns exec "$ns" "$PYTHON" -c "$RATE_PY" recv "$HUB_IP" "$((port + 1))" "$seconds")"
  wait "$srv"
  rm -rf "$out"
  printf '{"name":"%s","cap":"%s","upload":%s,"download":%s}\n' "$name" "$RATE" "$up_json" "$down_json"
}

[[ $# -ge 1 ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2; }
cmd="$1"; shift
case "$cmd" in
  up) [[ $# -eq 1 ]] || die "usage: up K"; up "$1" ;;
  down) down ;;
  list) list ;;
  exec) [[ $# -ge 2 ]] || die "usage: exec NAME cmd..."; ns="$(ns_of "$1")"; shift; exec ip netns exec "$ns" "$@" ;;
  bytes) [[ $# -eq 1 ]] || die "usage: bytes NAME"; bytes "$1" ;;
  ip) [[ $# -eq 1 ]] || die "usage: ip NAME"; ip_of "$1" ;;
  rate) rate "$@" ;;
  *) die "unknown command '$cmd' (up, down, exec, bytes, ip, list, rate)" ;;
esac
