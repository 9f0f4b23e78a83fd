#!/usr/bin/env bash
# Soak against a black hole (sipstorm issue 8): a UDP socket that receives
# and never answers. Every attempt must time out at Timer B/F (64·T1) and
# its state be freed then, so resident memory must plateau after 64·T1 and
# stay flat. Samples VmRSS of `sipstorm run` every few seconds and writes
# the figures to results/2026-11-22-reliability/soak-blackhole-<scenario>.txt.
#
# usage: scripts/soak-blackhole.sh [DURATION_S=300] [RATE=2000] [SCENARIO=register] [T1=500ms]
# Then (optional, needs root + sch_netem): scripts/soak-blackhole.sh --netem
#   runs `run` against `serve` inside a fresh network namespace with 5 %
#   loss on its loopback and records the report totals.
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=results/2026-11-22-reliability
mkdir -p "$out_dir"
bin=target/release/sipstorm
[ -x "$bin" ] || cargo build --release

if [ "${1:-}" = "--netem" ]; then
    f="$out_dir/netem-loss.txt"
    ns="sipstorm-soak-$$"
    if ! ip netns add "$ns" 2>/dev/null; then
        echo "netem: cannot create a network namespace here (need root/CAP_NET_ADMIN)" | tee "$f"
        exit 0
    fi
    trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
    ip netns exec "$ns" ip link set lo up
    if ! ip netns exec "$ns" tc qdisc add dev lo root netem loss 5% 2>"$f.err"; then
        echo "netem: tc qdisc netem unavailable here: $(cat "$f.err") (kernel without sch_netem); loss is covered by the simulated network (tests/reliability_engine.rs)" | tee "$f"
        rm -f "$f.err"
        exit 0
    fi
    rm -f "$f.err"
    ip netns exec "$ns" "$bin" serve --listen 127.0.0.1:5070 --workers 1 --quiet &
    sp=$!
    sleep 0.5
    set +e
    ip netns exec "$ns" "$bin" run --target 127.0.0.1:5070 --scenario register --rate 500 \
        --duration 20s --t1 100ms --workers 1 --quiet --out "/tmp/$ns" \
        --user-pattern 'u{00000..99999}' --password-pattern 'pw-{user}'
    rc=$?
    set -e
    kill "$sp"
    {
        echo "netem loss 5% on loopback in netns; run register 500/s 20s t1=100ms; exit $rc"
        python3 -c "import json;r=json.load(open('/tmp/$ns/report.json'));print('totals',r['totals']['register']);print('messages',r['messages'])"
    } | tee "$f"
    exit 0
fi

dur="${1:-300}"
rate="${2:-2000}"
scenario="${3:-register}"
t1="${4:-500ms}"
f="$out_dir/soak-blackhole-$scenario.txt"

python3 - "$dur" >/tmp/soak-bh-port.$$ <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(1.0)
end = time.time() + float(sys.argv[1]) + 120
while time.time() < end:
    try:
        s.recv(65536)
    except socket.timeout:
        pass
PY
bh=$!
trap 'kill $bh 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    [ -s /tmp/soak-bh-port.$$ ] && break
    sleep 0.1
done
port=$(head -1 /tmp/soak-bh-port.$$)
rm -f /tmp/soak-bh-port.$$
rep="/tmp/sipstorm-soak-$$"
"$bin" run --target "127.0.0.1:$port" --scenario "$scenario" --rate "$rate" \
    --duration "${dur}s" --t1 "$t1" --quiet --out "$rep" \
    --user-pattern 'u{000000..999999}' --password-pattern 'pw-{user}' &
rp=$!
start=$(date +%s.%N)
{
    echo "# sipstorm soak against a black hole: $scenario at $rate/s for ${dur}s, T1=$t1 (Timer B/F = 64*T1)"
    echo "# $(date -u +%FT%TZ)  $(git rev-parse --short HEAD)  $(nproc) cores  $(uname -r)"
    echo "# t_s  rss_kib"
} >"$f"
while kill -0 "$rp" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$rp/status" 2>/dev/null || true)
    [ -n "$rss" ] && printf '%6.1f  %s\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$rss" >>"$f"
    sleep 5
done
set +e
wait "$rp"
rc=$?
set -e
took=$(echo "$(date +%s.%N) - $start" | bc)
python3 - "$f" "$rep/report.json" "$rc" "$took" "$dur" <<'PY' | tee -a "$f"
import json, sys
f, rep, rc, took, dur = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rows = [l.split() for l in open(f) if l[0] != "#"]
rows = [(float(t), int(k)) for t, k in rows]
r = json.load(open(rep))
tot = {k: v for k, v in r["totals"].items() if v.get("attempted")}
# plateau: after 2 x 64*T1 warm-up, until the end of the load
late = [k for t, k in rows if 80 <= t <= dur]
print(f"# exit code {rc}, wall {took:.1f} s (duration {dur:.0f} s + drain)")
print(f"# totals {json.dumps(tot)}")
print(f"# messages {json.dumps(r['messages'])}")
print(f"# process {json.dumps(r['process'])}")
if late:
    print(f"# rss after warm-up (t=80..{dur:.0f} s): min {min(late)} KiB, max {max(late)} KiB, "
          f"first {late[0]} KiB, last {late[-1]} KiB, growth {100.0*(late[-1]-late[0])/late[0]:+.1f} %")
PY
