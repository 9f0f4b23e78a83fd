#!/usr/bin/env bash
# sipstorm <-> SIPp over TCP and TLS (issue 15), both roles, on 127.0.0.1:
#   sipp-uac-tcp    sipp -sn uac -t t1 -> sipstorm serve --listen tcp:...
#   sipp-uac-tls    sipp -sn uac -t l1 -> sipstorm serve --listen tls:...
#   run-uas-tcp     sipstorm run --transport tcp -> sipp -sn uas -t t1
#   run-uas-tls     sipstorm run --transport tls -> sipp -sn uas -t l1
# SIPp's TLS reads cacert.pem/cakey.pem from its working directory: the
# script makes them with openssl (a self-signed certificate for 127.0.0.1),
# gives the same pair to `serve --tls-cert/--tls-key`, and has sipstorm
# trust it with --tls-ca. Each case checks SIPp's counters and report.json.
#
# Usage: scripts/interop-stream-sipp.sh [CASE...]   (no CASE = all)
# Env: SIPSTORM (binary), CALLS (200), RATE (100), INTEROP_KEEP=1.
. "$(dirname "$0")/interop-lib.sh"

CALLS=${CALLS:-200}
RATE=${RATE:-100}
need sipp openssl python3

SIPSTORM_BIN=$(sipstorm_bin)

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$WORK/cakey.pem" -out "$WORK/cacert.pem" >"$WORK/openssl.log" 2>&1 \
  || fail "openssl could not make a certificate: $(cat "$WORK/openssl.log")"

report_ok() {
  python3 - "$1/report.json" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); want = int(sys.argv[2])
c, t = r["totals"]["call"], r["transport"]
print(f"report: call={json.dumps(c)} transport={json.dumps({k: v for k, v in t.items() if not k.endswith('_ms')})}", file=sys.stderr)
ok = c["completed"] == want and c["failed"] == 0 and r["messages"]["retransmitted"] == 0 and t["connections_opened"] >= 1
sys.exit(0 if ok else 1)
EOF
}

# sipp_uac KIND TRANSPORT: SIPp's uac against serve on KIND.
sipp_uac() {
  local kind=$1 t=$2 port serve_pid
  port=$(free_tcp_port)
  local tls=()
  [ "$kind" = tls ] && tls=(--tls-cert "$WORK/cacert.pem" --tls-key "$WORK/cakey.pem")
  (cd "$WORK" && exec timeout 120 "$SIPSTORM_BIN" serve --listen "$kind:127.0.0.1:$port" \
    "${tls[@]}" --workers 2 --quiet >"$WORK/serve-$kind.out" 2>&1) &
  serve_pid=$!
  _interop_pids+=("$serve_pid")
  wait_tcp_listen "$port" || { cat "$WORK/serve-$kind.out" >&2; fail "serve did not listen on $kind:$port"; }
  local rc=0
  run_sipp "uac-$kind" -sn uac -t "$t" "127.0.0.1:$port" -i 127.0.0.1 -m "$CALLS" -r "$RATE" || rc=$?
  log "sipp -sn uac -t $t -> serve $kind: $(sipp_summary "uac-$kind") (exit $rc)"
  kill -TERM "$serve_pid" 2>/dev/null || true
  [ "$rc" -eq 0 ] || { show_sipp_errors "uac-$kind"; fail "SIPp uac over $kind failed"; }
  [ "$(sipp_stat "uac-$kind" 'SuccessfulCall(C)')" = "$CALLS" ] || fail "SIPp uac over $kind: not every call succeeded"
}

# run_uas KIND TRANSPORT: sipstorm run against SIPp's uas on KIND.
run_uas() {
  local kind=$1 t=$2 port rc=0
  port=$(free_tcp_port)
  start_sipp_bg "uas-$kind" -sn uas -t "$t" -i 127.0.0.1 -p "$port" -m "$CALLS"
  local uas=$BG_PID
  wait_tcp_listen "$port" || { show_sipp_errors "uas-$kind"; fail "SIPp uas did not listen on $kind:$port"; }
  local extra=()
  [ "$kind" = tls ] && extra=(--tls-ca "$WORK/cacert.pem")
  timeout 120 "$SIPSTORM_BIN" run --target "127.0.0.1:$port" --transport "$kind" "${extra[@]}" \
    --scenario call --count "$CALLS" --rate "$RATE" --workers 1 --quiet --out "$WORK/run-$kind" \
    >"$WORK/run-$kind.out" 2>&1 || rc=$?
  log "sipstorm run --transport $kind -> sipp -sn uas -t $t: exit $rc"
  [ "$rc" -eq 0 ] || { tail -n 20 "$WORK/run-$kind.out" >&2; fail "sipstorm over $kind against SIPp failed"; }
  report_ok "$WORK/run-$kind" "$CALLS" || fail "report of run over $kind"
  # SIPp's uas ends each call with a 4 s pause after the BYE's 200; when
  # sipstorm closes its connection at the end of the run, SIPp counts the
  # calls still in that pause as failed. What matters here is that SIPp
  # received every INVITE, ACK and BYE over TCP and answered each.
  local urc=0
  wait_bg "$uas" || urc=$?
  local byes acks
  byes=$(awk '$1 == "---------->" && $2 == "BYE" { print $3; exit }' "$WORK/uas-$kind.screen.log")
  acks=$(awk '$1 == "---------->" && $2 == "ACK" { print $4; exit }' "$WORK/uas-$kind.screen.log")
  log "sipp uas over $kind: exit $urc, $(sipp_summary "uas-$kind"), ACKs $acks, BYEs $byes"
  [ "$byes" = "$CALLS" ] && [ "$acks" = "$CALLS" ] \
    || { show_sipp_errors "uas-$kind"; fail "SIPp uas over $kind saw ACKs '$acks' BYEs '$byes' of $CALLS"; }
}

# Debian's sip-tester is built without OpenSSL: its TLS transports refuse
# to start ("To use a TLS transport you must compile SIPp with OpenSSL").
# Its version string lists the optional parts it was built with (e.g.
# "SIPp v3.6.1-TLS-SCTP-PCAP-RTPSTREAM").
sipp_has_tls() {
  sipp -v 2>&1 | grep -q -- '-TLS'
}

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(sipp-uac-tcp sipp-uac-tls run-uas-tcp run-uas-tls)
for c in "${cases[@]}"; do
  if [[ "$c" == *tls ]] && ! sipp_has_tls; then
    log "case $c: this SIPp has no TLS (built without OpenSSL): not run"
    exit 77
  fi
  case "$c" in
    sipp-uac-tcp) sipp_uac tcp t1 ;;
    sipp-uac-tls) sipp_uac tls l1 ;;
    run-uas-tcp) run_uas tcp t1 ;;
    run-uas-tls) run_uas tls l1 ;;
    *) fail "unknown case $c" ;;
  esac
  log "case $c: ok"
done
interop_pass "${cases[*]}"
