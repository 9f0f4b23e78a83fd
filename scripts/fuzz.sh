#!/usr/bin/env bash
# A short fuzz run of every cargo-fuzz target (sipstorm issue 8):
#   parse          sip::parse / sip::frame          (seeds: fuzz/seeds/parse)
#   challenge      auth::parse_challenge / _authorization
#   engine_handle  engine Endpoint::handle() on client and server
#   scenario       SIPp XML scenario reader/compiler (seeds: fuzz/seeds/scenario)
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGET...]
#
# cargo-fuzz needs a nightly toolchain (`cargo +nightly`) and cargo-fuzz
# (`cargo install cargo-fuzz`). Without them this script says so and runs
# the always-on equivalent instead: the mutation tests of the normal suite.
# Corpora grow under fuzz/corpus/<target> (not committed); crashes land in
# fuzz/artifacts/<target>/ with the command to reproduce printed by libFuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(parse challenge engine_handle scenario)

mutation_tests() {
    cargo test --test sip_mutation --test sip_fuzz_corpus --test reliability_engine
    cargo test --lib engine::sim_tests::mutated_messages_never_panic
    cargo test --lib engine::scenario::tests::
}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly toolchain (cargo +nightly): cargo-fuzz cannot run here." >&2
    echo "fuzz.sh: running the mutation tests of the normal suite instead." >&2
    mutation_tests
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is not installed (cargo install cargo-fuzz)." >&2
    echo "fuzz.sh: running the mutation tests of the normal suite instead." >&2
    mutation_tests
    exit 0
fi

for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    seeds=()
    case "$t" in
        parse | engine_handle) seeds=(fuzz/seeds/parse) ;;
        scenario) seeds=(fuzz/seeds/scenario) ;;
    esac
    echo "== fuzz $t for ${secs}s"
    # -O: release build (what ships); --sanitizer none: the crate has no
    # unsafe outside transport, and ASan halves the exec rate.
    cargo +nightly fuzz run -O --sanitizer none "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -max_len=65536 -print_final_stats=1 2>&1 |
        grep -E 'stat::|Done|ERROR|panicked|SUMMARY|Test unit written' || true
    if ls "fuzz/artifacts/$t"/crash-* >/dev/null 2>&1; then
        echo "fuzz.sh: $t CRASHED, see fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz.sh: no crash in ${targets[*]} (${secs}s each)"
