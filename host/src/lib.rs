//! Sluice: a streaming ETL runtime. Records come in from a source, are decoded natively into
//! Arrow record batches, pass through sandboxed WebAssembly transform components, and are
//! written as Parquet.
//!
//! Module map (low level to high level):
//! - [`record`]: the ground floor: chunks of framed raw records and where each came from;
//!   [`retry`]: the one backoff policy;
//! - [`config`]: pipeline TOML → typed config with positions and line-accurate errors;
//! - [`engine`]: wasmtime, the only module that touches it: compile, cache, sandbox, call;
//! - [`checkpoint`]: the exactly-once protocol (pure decisions), what a checkpoint holds,
//!   the checkpoint stores;
//! - [`decode`]: raw records → Arrow batches, plus metadata columns (pure);
//! - [`source`]: the source kinds (files, stdin, MQTT with acknowledgement after commit,
//!   datagen) behind one trait, each partition with a position of its own;
//! - [`sink`]: the two-phase sink protocol over a storage trait: Parquet files in partition
//!   folders, the raw archive, dead letters, and recovery of their files;
//! - [`pipeline`]: the validated plan and the running pipeline (threads, ordering,
//!   back-pressure, the stage failure policy), and hot reload (`pipeline::reload`, with
//!   `sluice status`);
//! - [`stock`]: the stock transforms embedded in the binary;
//! - [`telemetry`]: logs, and the metrics every layer records (the `metrics` facade's
//!   handles, exported by the Prometheus endpoint the CLI starts);
//! - [`cli`] and [`cases`]: the `sluice` command's edge (`cases`: `sluice test`'s checks and
//!   `sluice replay`'s input; [`scaffold`]: `sluice new`'s templates; [`top`]: `sluice
//!   top`'s screen);
//! - [`fault`]: crash injection for the crash tests.

pub mod aws;
pub mod cases;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod decode;
pub mod engine;
pub mod fault;
pub mod pipeline;
pub mod record;
pub mod retry;
pub mod scaffold;
pub mod sink;
pub mod source;
pub mod stock;
pub mod telemetry;
pub mod top;
