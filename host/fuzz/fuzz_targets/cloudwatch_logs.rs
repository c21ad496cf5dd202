#![no_main]
//! `cargo +nightly fuzz run cloudwatch_logs` (from `host/`): see `entry.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::cloudwatch_logs(data));
