#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need,
# then runs every test. This is the README's second command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the integration tests use (real peers: SIPp, Kamailio, tshark).
if [ -x scripts/install-test-deps.sh ]; then
  scripts/install-test-deps.sh
fi

cargo build --release --bins
# Unit and integration tests; two at a time on a 2-core machine.
cargo test --release --lib --bins --tests --no-fail-fast -- --test-threads=2
# Criterion benches in test mode: every bench body runs once (they take no libtest flags).
cargo test --release --benches --no-fail-fast
