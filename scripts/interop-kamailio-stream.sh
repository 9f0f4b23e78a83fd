#!/usr/bin/env bash
# sipstorm <-> real Kamailio over TCP and TLS (issue 15), on 127.0.0.1.
# Kamailio listens on udp, tcp and tls (scripts/kamailio/start.sh with
# KAMAILIO_TCP_PORT/KAMAILIO_TLS_PORT: Debian's kamailio-tls-modules with
# OpenSSL, a self-signed certificate it makes, which sipstorm trusts with
# --tls-ca).
#   register-tcp   digest REGISTERs over TCP (one connection per worker);
#                  every AoR bound, Contacts with ;transport=tcp (kamcmd)
#   register-tls   digest REGISTERs over TLS, one connection per attempt,
#                  sessions resumed; every AoR bound with a sips: Contact
#   call-tcp       calls through the proxy over TCP: INVITE -> 407 -> ACK,
#                  INVITE with Proxy-Authorization -> 180/200 with
#                  Record-Route -> ACK and BYE via the route set, to a SIPp
#                  UAS registered over UDP
#   call-tls       the same over TLS, one connection per user
# and SIP over WebSocket (issue 16, RFC 7118; Kamailio's xhttp and
# websocket modules, Debian's kamailio-websocket-modules, on two more
# ports; wss with the same certificate), only when named:
#   register-ws    digest REGISTERs over ws (one connection per worker,
#                  --ws-path and --ws-origin as a browser sends them);
#                  every AoR bound with a ;transport=ws Contact
#   register-wss   the same over wss, one connection per attempt
#   call-ws        calls through the proxy over ws with 407 and
#                  Record-Route, to the SIPp UAS over UDP
#   call-wss       the same over wss, one connection per user
# Usage: scripts/interop-kamailio-stream.sh [CASE...]  (no CASE = the tcp
# and tls ones)
# Env: SIPSTORM (binary), REG_COUNT (300), REG_RATE (100/s), CALLS (100),
#   INTEROP_KEEP=1.
. "$(dirname "$0")/interop-lib.sh"

REG_COUNT=${REG_COUNT:-300}
REG_RATE=${REG_RATE:-100}
CALLS=${CALLS:-100}
need kamailio kamcmd sipp python3 openssl

SIPSTORM_BIN=$(sipstorm_bin)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ] || ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 \
  || fail "Kamailio's tls module is not installed (kamailio-tls-modules): run scripts/install-test-deps.sh"

KPORT=$(free_udp_port)
export KAMAILIO_TCP_PORT KAMAILIO_TLS_PORT
KAMAILIO_TCP_PORT=$(free_tcp_port)
KAMAILIO_TLS_PORT=$(free_tcp_port)
if [[ " $* " == *" register-ws"* || " $* " == *" call-ws"* ]]; then
  ls /usr/lib/*/kamailio/modules/websocket.so >/dev/null 2>&1 \
    || fail "Kamailio's websocket module is not installed (kamailio-websocket-modules): run scripts/install-test-deps.sh"
  export KAMAILIO_WS_PORT KAMAILIO_WSS_PORT
  KAMAILIO_WS_PORT=$(free_tcp_port)
  KAMAILIO_WSS_PORT=$(free_tcp_port)
fi
start_kamailio kamailio "$KPORT"
log "kamailio on udp:$KPORT tcp:$KAMAILIO_TCP_PORT tls:$KAMAILIO_TLS_PORT ws:${KAMAILIO_WS_PORT:--} wss:${KAMAILIO_WSS_PORT:--} (pid $KAM_PID)"
CA="$KAM_DIR/cert.pem"

# check_report DIR PY_EXPR...: each expression about report.json `r` holds.
check_report() {
  local dir=$1
  shift
  python3 - "$dir/report.json" "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = [e for e in sys.argv[2:] if not eval(e, {}, {"r": r})]
t = r["transport"]
print("report: totals=%s transport=%s" % (json.dumps(r["totals"]),
      json.dumps({k: v for k, v in t.items() if not k.endswith("_ms")})), file=sys.stderr)
for e in bad:
    print("report check failed: " + e, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

sipstorm_run() {
  local name=$1 rc=0
  shift
  timeout 120 "$SIPSTORM_BIN" run "$@" --quiet --out "$WORK/$name" >"$WORK/$name.out" 2>&1 || rc=$?
  log "sipstorm run $* -> exit $rc"
  [ "$rc" -eq 0 ] || { tail -n 20 "$WORK/$name.out" >&2; fail "$name: sipstorm failed"; }
}

register_case() {
  local kind=$1 port=$2 prefix=$3 want=$4
  shift 4
  local n=$REG_COUNT
  sipstorm_run "register-$kind" --target "127.0.0.1:$port" --transport "$kind" "$@" \
    --scenario register --user-pattern "$prefix{0000..$(printf '%04d' $((n - 1)))}" \
    --password-pattern 'pw-{user}' --count "$n" --rate "$REG_RATE" --workers 2
  check_report "$WORK/register-$kind" \
    "r['totals']['register']['succeeded'] == $n" "r['totals']['register']['failed'] == 0" \
    "r['messages']['retransmitted'] == 0" "r['responses'].get('401') == $n" \
    "r['transport']['connections_failed'] == 0" || fail "register-$kind: report"
  for i in $(seq 0 $((n - 1))); do printf "$prefix%04d\n" "$i"; done >"$WORK/aors-$kind.txt"
  kam_check_bindings "$WORK/aors-$kind.txt" || fail "register-$kind: bindings missing in Kamailio"
  local with
  with=$(grep -c -- "$want" "$WORK/ul.lookup.txt" || true)
  [ "$with" -ge "$n" ] || fail "register-$kind: expected $n Contacts with '$want', Kamailio has $with"
  log "register-$kind: $n AoRs bound, Contacts with '$want'"
}

# The callees of scripts/sipp/callees.csv, registered over UDP by SIPp
# with their Contact at a SIPp UAS (once for both call cases).
CALLEES_DONE=0
UPORT=
callees() {
  [ "$CALLEES_DONE" = 1 ] && return 0
  UPORT=$(free_udp_port)
  local rc=0
  run_sipp callees "127.0.0.1:$KPORT" -sf "$SIPP_DIR/register_contact.xml" \
    -inf "$SIPP_DIR/callees.csv" -i 127.0.0.1 -p "$(free_udp_port)" \
    -key contact "127.0.0.1:$UPORT" -m 20 -r 100 || rc=$?
  [ "$rc" -eq 0 ] || { show_sipp_errors callees; fail "callee registration failed"; }
  CALLEES_DONE=1
}

call_case() {
  local kind=$1 port=$2
  shift 2
  callees
  start_sipp_bg "uas-$kind" -sf "$SIPP_DIR/uas_rr.xml" -i 127.0.0.1 -p "$UPORT" -m "$CALLS"
  local uas=$BG_PID
  wait_udp_listen "$UPORT" 5 || fail "the SIPp UAS did not bind 127.0.0.1:$UPORT"
  # Callers c0000..c0019 call the next one (c0001..c0019, c0000): all of
  # them are the registered callees.
  sipstorm_run "call-$kind" --target "127.0.0.1:$port" --transport "$kind" "$@" \
    --scenario call --user-pattern 'c{0000..0019}' --password-pattern 'pw-{user}' \
    --count "$CALLS" --rate 50 --workers 1
  local rc=0
  wait_bg "$uas" || rc=$?
  [ "$rc" -eq 0 ] || { show_sipp_errors "uas-$kind"; fail "call-$kind: the SIPp UAS did not see every call"; }
  check_report "$WORK/call-$kind" \
    "r['totals']['call']['completed'] == $CALLS" "r['totals']['call']['failed'] == 0" \
    "r['responses'].get('407') == $CALLS" "r['messages']['retransmitted'] == 0" \
    "r['transport']['connections_failed'] == 0" || fail "call-$kind: report"
  log "call-$kind: $CALLS calls through Kamailio with 407 and Record-Route; UAS: $(sipp_summary "uas-$kind")"
}

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(register-tcp register-tls call-tcp call-tls)
for c in "${cases[@]}"; do
  case "$c" in
    register-tcp) register_case tcp "$KAMAILIO_TCP_PORT" t ';transport=tcp' ;;
    register-tls) register_case tls "$KAMAILIO_TLS_PORT" s 'sips:' --tls-ca "$CA" \
      --connection-mode call --tls-resume ;;
    call-tcp) call_case tcp "$KAMAILIO_TCP_PORT" ;;
    call-tls) call_case tls "$KAMAILIO_TLS_PORT" --tls-ca "$CA" --connection-mode user ;;
    register-ws) register_case ws "$KAMAILIO_WS_PORT" w ';transport=ws' \
      --ws-path /sip --ws-origin https://phone.example ;;
    register-wss) register_case wss "$KAMAILIO_WSS_PORT" x ';transport=ws' --tls-ca "$CA" \
      --connection-mode call ;;
    call-ws) call_case ws "$KAMAILIO_WS_PORT" ;;
    call-wss) call_case wss "$KAMAILIO_WSS_PORT" --tls-ca "$CA" --connection-mode user ;;
    *) fail "unknown case $c" ;;
  esac
done
interop_pass "${cases[*]}"
