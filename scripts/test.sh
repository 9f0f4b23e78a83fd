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
cargo test --all-targets --release --no-fail-fast -- --test-threads=2
