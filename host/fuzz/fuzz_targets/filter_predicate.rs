#![no_main]
//! `cargo +nightly fuzz run filter_predicate` (from `host/`): see `entry.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::filter_predicate(data));
