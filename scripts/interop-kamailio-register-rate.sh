#!/usr/bin/env bash
# Measurement, not a test: how many digest registrations per second SIPp
# drives into the project's Kamailio on this machine, and what each side
# spends in CPU. One Kamailio (2 UDP workers), then for each RATE a SIPp run
# of RATE*SECONDS REGISTER transactions (401 + 200 each, users of users.csv
# reused round-robin) at that offered rate, bounded by SIPp's own timeouts.
#
# Usage: scripts/interop-kamailio-register-rate.sh [SECONDS] [RATE...]
#   default: 3 s at 1000 2000 4000 8000 /s. Prints one line per rate:
#   offered, achieved (successful / wall time), failed, retransmissions,
#   Kamailio CPU s, client CPU s, and Kamailio CPU per registration.
#   CLIENT=sipstorm drives the same load with `sipstorm run --scenario
#   register` (binary from SIPSTORM, else target/release, target/debug)
#   instead of SIPp; its numbers come from its report.json.
. "$(dirname "$0")/interop-lib.sh"

SECONDS_PER_RATE=${1:-3}
shift || true
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(1000 2000 4000 8000)

need sipp kamailio kamcmd
if [ "${CLIENT:-sipp}" = sipstorm ]; then
  SIPSTORM_BIN=${SIPSTORM:-}
  for c in "$ROOT/target/release/sipstorm" "$ROOT/target/debug/sipstorm"; do
    [ -n "$SIPSTORM_BIN" ] || { [ -x "$c" ] && SIPSTORM_BIN=$c; }
  done
  [ -n "$SIPSTORM_BIN" ] || fail "CLIENT=sipstorm but no sipstorm binary (SIPSTORM=...)"
fi
KPORT=$(free_udp_port)
start_kamailio kamailio "$KPORT"
log "kamailio on udp:127.0.0.1:$KPORT, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# UDP receive-buffer drops on the whole machine (other work counts too).
udp_rcvbuf_errors() { awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp; }

printf '%-8s %-9s %-7s %-7s %-9s %-9s %-10s %-14s %s\n' offered achieved ok failed retrans kam_cpu_s client_cpu_s kam_us_per_reg udp_drops
for rate in "${RATES[@]}"; do
  n=$((rate * SECONDS_PER_RATE))
  sport=$(free_udp_port)
  c0=$(proc_tree_cpu_s "$KAM_PID")
  d0=$(udp_rcvbuf_errors)
  rc=0
  if [ "${CLIENT:-sipp}" = sipstorm ]; then
    t0=$(date +%s.%N)
    timeout 120 "$SIPSTORM_BIN" run --target "127.0.0.1:$KPORT" --scenario register \
      --user-pattern 'u{0000..1999}' --password-pattern 'pw-{user}' \
      --rate "$rate" --count "$n" --out "$WORK/rate-$rate" --quiet >"$WORK/rate-$rate.out" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    c1=$(proc_tree_cpu_s "$KAM_PID")
    d1=$(udp_rcvbuf_errors)
    read -r ok failed retrans scpu < <(python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
t = r["totals"]["register"]
p = r.get("process", {})
# "failed" here: every attempt that did not succeed (failed, timed out, or
# unaccounted), and attempts never started (count - attempted).
print(t["succeeded"], int(sys.argv[2]) - t["succeeded"], r.get("messages", {}).get("retransmitted", "NA"),
      "%.2f" % (p.get("cpu_user_s", 0) + p.get("cpu_sys_s", 0)))' "$WORK/rate-$rate/report.json" "$n" 2>/dev/null || echo "0 NA NA NA")
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  else
    run_sipp "rate-$rate" "127.0.0.1:$KPORT" -sf "$SIPP_DIR/register.xml" \
      -inf "$SIPP_DIR/users.csv" -i 127.0.0.1 -p "$sport" -m "$n" -r "$rate" \
      -l $((rate * 2)) -buff_size "${SIPP_BUFF:-1048576}" || rc=$?
    c1=$(proc_tree_cpu_s "$KAM_PID")
    d1=$(udp_rcvbuf_errors)
    ok=$(sipp_stat "rate-$rate" 'SuccessfulCall(C)')
    failed=$(sipp_stat "rate-$rate" 'FailedCall(C)')
    retrans=$(sipp_stat "rate-$rate" 'Retransmissions(C)')
    wall=$(cat "$WORK/rate-$rate.wall_s")
    scpu=$(cat "$WORK/rate-$rate.cpu_s" 2>/dev/null || echo NA)
  fi
  awk -v r="$rate" -v ok="$ok" -v f="$failed" -v rt="$retrans" -v w="$wall" -v a="$c0" -v b="$c1" -v s="$scpu" -v d=$((d1 - d0)) 'BEGIN {
    k = b - a; printf "%-8d %-9.0f %-7s %-7s %-9s %-9.2f %-10s %-14.0f %d\n", r, ok / w, ok, f, rt, k, s, (ok > 0 ? k / ok * 1e6 : 0), d }'
  [ "$rc" -eq 0 ] || log "${CLIENT:-sipp} exit $rc at $rate/s"
done
log "registered_users=$(kam_ul_stat registered_users)"
interop_pass "rate sweep done"
