#![no_main]
//! `cargo +nightly fuzz run decode_json` (from `host/`): see `entry.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::decode_json(data));
