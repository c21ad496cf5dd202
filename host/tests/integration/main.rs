//! End-to-end tests of the `sluice` binary: golden config errors, every example pipeline
//! read back by an independent Parquet reader, and faulty components.

mod bad_input;
mod broker;
mod console;
mod crash;
mod e2e;
mod faults;
mod follow;
mod fuzz_corpus;
mod js_sdk;
mod kinesis;
mod kinesis_emulator;
mod kinesis_source;
mod leases;
mod lineage;
mod metrics;
mod moto;
mod mqtt;
mod precompiled;
mod prometheus;
mod py_sdk;
mod reload;
mod s3_sink;
mod s3_store;
mod sandbox;
mod scaffold;
mod sinks;
mod sources;
mod status;
mod support;
mod testcmd;
mod validate;
mod windows;
