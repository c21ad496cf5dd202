#![no_main]
//! `cargo +nightly fuzz run pipeline_file` (from `host/`): see `entry.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::pipeline_file(data));
