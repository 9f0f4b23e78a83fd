//! Runs every seed of the cargo-fuzz seed corpus (`fuzz/seeds/parse/`;
//! `fuzz/corpus/` is the fuzzer's own, git-ignored) through
//! the same checks as the fuzz target, so plain `cargo test` covers it even
//! where cargo-fuzz (nightly) is not available.

mod sip_common;

#[test]
fn fuzz_corpus_seeds_hold_the_invariants() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/parse");
    let mut n = 0;
    let mut accepted = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds/parse exists") {
        let path = entry.expect("dir entry").path();
        let data = std::fs::read(&path).expect("readable seed");
        sip_common::exercise(&data);
        accepted += sipstorm::sip::parse(&data).is_ok() as usize;
        n += 1;
    }
    assert!(n >= 20, "only {n} seeds in {}", dir.display());
    assert!(
        accepted > 0 && accepted < n,
        "seeds should cover valid and invalid input"
    );
}
