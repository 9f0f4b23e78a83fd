#!/usr/bin/env bash
# Real packet loss on loopback: a private network namespace whose lo drops
# LOSS percent of UDP datagrams at random (nftables `numgen random`; the
# netem qdisc is not built into every kernel, this one lacks it), a
# `sipstorm serve` inside it, and `sipstorm run` against it. Nothing leaves
# the namespace; it is deleted on exit, also on failure.
#
# Usage: scripts/netns-loss.sh LOSS_PERCENT OUTDIR [run flags...]
#   e.g. scripts/netns-loss.sh 10 results/loss10 --scenario call --count 500 --rate 100 --t1 100ms
# Env:   SIPSTORM_BIN (default target/release/sipstorm), SERVE_FLAGS (extra serve flags)
# Needs root, `ip` (iproute2) and `nft` (nftables). Exit code: that of `run`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 LOSS_PERCENT OUTDIR [run flags...]" >&2; exit 2; }
LOSS=$1; OUT=$2; shift 2
case "$LOSS" in ''|*[!0-9]*) echo "LOSS_PERCENT must be a whole number 0-100" >&2; exit 2;; esac
[ "$LOSS" -le 100 ] || { echo "LOSS_PERCENT must be 0-100" >&2; exit 2; }
BIN=${SIPSTORM_BIN:-target/release/sipstorm}
BIN=$(readlink -f "$BIN")
[ -x "$BIN" ] || { echo "no sipstorm binary at $BIN (cargo build --release)" >&2; exit 2; }
export PATH="$PATH:/usr/sbin:/sbin"
for t in ip nft; do command -v $t >/dev/null || { echo "$t not found (apt-get install iproute2 nftables)" >&2; exit 2; }; done

NS="sipstorm-loss-$$"
SERVE_PID=
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
# Every datagram crosses lo's input hook once: dropping LOSS% there is LOSS%
# loss per datagram, in both directions.
ip netns exec "$NS" nft -f - <<EOF
table inet sipstorm_loss {
  chain input {
    type filter hook input priority 0; policy accept;
    meta l4proto udp numgen random mod 100 < $LOSS drop
  }
}
EOF

mkdir -p "$OUT"
PORT=5060
# shellcheck disable=SC2086
ip netns exec "$NS" "$BIN" serve --listen 127.0.0.1:$PORT --workers 1 --quiet ${SERVE_FLAGS:-} \
  2>"$OUT/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do
  grep -q "listening on" "$OUT/serve.log" 2>/dev/null && break
  sleep 0.05
done
grep -q "listening on" "$OUT/serve.log" || { echo "serve did not start: $(cat "$OUT/serve.log")" >&2; exit 3; }

rc=0
ip netns exec "$NS" "$BIN" run --target 127.0.0.1:$PORT --quiet --out "$OUT" "$@" >"$OUT/run.txt" 2>&1 || rc=$?
echo "loss ${LOSS}% -> run exit $rc, report in $OUT"
exit $rc
