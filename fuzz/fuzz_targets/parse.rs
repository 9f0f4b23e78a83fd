//! Fuzz `sip::parse` and `sip::frame`: no input may panic, and whatever is
//! accepted must satisfy the invariants in `tests/sip_common` (the same
//! checks `cargo test --test sip_fuzz_corpus` runs over `fuzz/seeds/parse`).
//!
//! Run: `cargo +nightly fuzz run parse fuzz/corpus/parse fuzz/seeds/parse`
//! (from the repository root; the seeds are committed, the corpus is not).
#![no_main]

#[path = "../../tests/sip_common/mod.rs"]
mod sip_common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sip_common::exercise(data);
});
