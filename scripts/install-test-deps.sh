#!/usr/bin/env bash
# Installs the real SIP peers the integration tests run against, from Debian's
# packages, only when they are missing:
#   sipp            <- sip-tester
#   kamailio kamcmd <- kamailio (core modules: sl tm rr maxfwd textops siputils
#                      xlog sanity usrloc registrar auth pv ctl kex corex are
#                      all in the main package; no database module is needed)
#   Kamailio's tls module <- kamailio-tls-modules (TCP/TLS interop, issue 15)
#   Kamailio's xhttp and websocket modules <- kamailio-websocket-modules
#                      (SIP over WebSocket interop, issue 16)
#   Python's websockets <- python3-websockets (the independent WebSocket SIP
#                      client scripts/ws-register.py, run with /usr/bin/python3)
#   openssl         <- openssl (certificates the TLS interop tests make)
#   tshark          <- tshark
#   python3         <- python3 (the interop scripts read SIPp stats and
#                      report.json with it; usually already there)
#   nft, ip         <- nftables, iproute2 (packet loss on loopback inside a
#                      network namespace the loss test makes: netem is not
#                      in every kernel, nftables' random drop is)
# Idempotent: when every command is present it prints so and does nothing.
# Must run as root (or with sudo available) on Debian/Ubuntu; fails loudly.
#
# Package services are never started by the install (a temporary policy-rc.d
# denies it when none exists), and a kamailio service the package may have
# enabled is not touched: the tests start their own Kamailio on 127.0.0.1.
set -euo pipefail

log() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

declare -A pkg_for=(
  [sipp]=sip-tester
  [kamailio]=kamailio
  [kamcmd]=kamailio
  [tshark]=tshark
  [python3]=python3
  [openssl]=openssl
  [nft]=nftables
  [ip]=iproute2
)

# kamailio and kamcmd live in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

missing_pkgs=()
for cmd in sipp kamailio kamcmd tshark python3 nft ip openssl; do
  if command -v "$cmd" >/dev/null 2>&1; then
    log "found $cmd at $(command -v "$cmd")"
  else
    pkg=${pkg_for[$cmd]}
    log "missing $cmd (Debian package $pkg)"
    if [[ " ${missing_pkgs[*]-} " != *" $pkg "* ]]; then
      missing_pkgs+=("$pkg")
    fi
  fi
done

# Kamailio's TLS transport is a separate package.
if ! ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1; then
  log "missing Kamailio's tls module (Debian package kamailio-tls-modules)"
  missing_pkgs+=(kamailio-tls-modules)
fi

# Kamailio's WebSocket support (xhttp + websocket) is another package.
if ! ls /usr/lib/*/kamailio/modules/websocket.so >/dev/null 2>&1; then
  log "missing Kamailio's websocket module (Debian package kamailio-websocket-modules)"
  missing_pkgs+=(kamailio-websocket-modules)
fi

# The Python WebSocket client runs on Debian's python3, where apt installs.
if ! /usr/bin/python3 -c 'import websockets' >/dev/null 2>&1; then
  log "missing Python's websockets for /usr/bin/python3 (Debian package python3-websockets)"
  missing_pkgs+=(python3-websockets)
fi

if [ ${#missing_pkgs[@]} -eq 0 ]; then
  log "all test dependencies present; nothing to do"
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
  else
    die "need root (or sudo) to install: ${missing_pkgs[*]}"
  fi
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install ${missing_pkgs[*]} by hand"

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# tshark's wireshark-common asks whether non-root users may capture; answer no.
if command -v debconf-set-selections >/dev/null 2>&1; then
  log "preseeding wireshark-common/install-setuid=false"
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | $SUDO debconf-set-selections
fi

# Keep package maintainer scripts from starting services (kamailio on :5060).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  log "installing a temporary /usr/sbin/policy-rc.d (no service starts during install)"
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() {
  if [ "$created_policy" = 1 ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
  fi
}
trap cleanup EXIT

log "apt-get update"
$SUDO apt-get "${APT_OPTS[@]}" update || die "apt-get update failed"

log "apt-get install -y --no-install-recommends ${missing_pkgs[*]}"
$SUDO apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing_pkgs[@]}" \
  || die "apt-get install ${missing_pkgs[*]} failed"

for cmd in sipp kamailio kamcmd tshark python3 nft ip openssl; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after install"
done
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || die "Kamailio's tls module still missing after install"
ls /usr/lib/*/kamailio/modules/websocket.so >/dev/null 2>&1 || die "Kamailio's websocket module still missing after install"
/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 || die "python3-websockets still missing after install"
log "installed: sipp=$(command -v sipp) kamailio=$(command -v kamailio) kamcmd=$(command -v kamcmd) tshark=$(command -v tshark)"
