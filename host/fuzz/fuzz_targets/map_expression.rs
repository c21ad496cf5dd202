#![no_main]
//! `cargo +nightly fuzz run map_expression` (from `host/`): see `entry.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::map_expression(data));
