#!/usr/bin/env bash
# Two os4x stations on this machine exchange a file over OFTP2/TCP on
# 127.0.0.1: station A queues it (`os4x send`), A's os4xsqd delivers it to
# station B's receive daemons (started by the `os4xrd` master), B stores it
# in its inbox and returns the EERP, and A's queue entry becomes `delivered`.
# No root needed; everything lives in a fresh temporary directory.
#
#   examples/demo.sh [FILE]        (default: a generated 5 MB file)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --locked --manifest-path "$REPO/Cargo.toml" \
    --bin os4x --bin os4xrd --bin os4xrd_tcpip --bin os4xrd_tcpip_tls --bin os4xsqd --bin os4x-pidctl
BIN="$REPO/target/release"

DEMO=$(mktemp -d /tmp/os4x-demo.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "demo files kept in $DEMO"
}
trap cleanup EXIT

A=O0013000000STATIONA
B=O0013000000STATIONB
PORT_B=${OS4X_DEMO_PORT:-23305}

station() { # name odette_id tcp_port
    mkdir -p "$DEMO/$1"
    cat >"$DEMO/$1/os4x.toml" <<TOML
state_dir = "$DEMO/$1/state"
tmp_dir = "$DEMO/$1/run"
[local]
odette_id = "$2"
password = "UNUSED"
[tcp]
listen = ["127.0.0.1:$3"]
[sq]
scan_interval = 1
TOML
}
station a "$A" $((PORT_B + 1))
station b "$B" "$PORT_B"
os4x_a() { OS4X_CONFIG="$DEMO/a/os4x.toml" "$BIN/os4x" "$@"; }
os4x_b() { OS4X_CONFIG="$DEMO/b/os4x.toml" "$BIN/os4x" "$@"; }

# Each station knows the other: passwords, and for A the route to B.
os4x_a partner add "$B" --name "Station B" --password-in BTOA --password-out ATOB
os4x_b partner add "$A" --name "Station A" --password-in ATOB --password-out BTOA
os4x_a route set "$B" --host 127.0.0.1 --port "$PORT_B"

OS4X_CONFIG="$DEMO/b/os4x.toml" "$BIN/os4xrd" 2>"$DEMO/b/os4xrd.log" & PIDS+=($!)
OS4X_CONFIG="$DEMO/a/os4x.toml" "$BIN/os4xsqd" 2>"$DEMO/a/os4xsqd.log" & PIDS+=($!)

FILE=${1:-}
if [ -z "$FILE" ]; then
    FILE="$DEMO/INVOICES.EDI"
    head -c 5000000 /dev/urandom >"$FILE"
fi
os4x_a send "$FILE" --to "$B"

echo "waiting for delivery (EERP back at A)..."
for _ in $(seq 300); do
    os4x_a queue --state delivered --json | grep -q '"state"' && break
    sleep 0.2
done
echo; echo "== station A: send queue"; os4x_a queue
echo; echo "== station B: received"; os4x_b received
echo; echo "== station B: daemons"; OS4X_CONFIG="$DEMO/b/os4x.toml" "$BIN/os4x-pidctl" status
got=$(find "$DEMO/b/state/inbox/$A" -maxdepth 1 -type f | head -n 1)
if [ -n "$got" ] && cmp -s "$FILE" "$got"; then
    echo; echo "OK: $got is byte-identical to $FILE"
else
    echo; echo "FAILED: file not delivered; see $DEMO/*/*.log" >&2
    exit 1
fi
