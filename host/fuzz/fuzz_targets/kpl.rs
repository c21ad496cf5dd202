#![no_main]
//! `cargo +nightly fuzz run kpl` (from `host/`): see `entry.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::kpl(data));
