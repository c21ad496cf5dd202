//! What sluice tells its operators: logs ([`logs`]), and Prometheus metrics — the handles
//! every layer records into ([`meters`], over the `metrics` facade, so recording is a no-op
//! when nothing is exported) and the scrape endpoint that exports them ([`endpoint`]).
//!
//! This module imports nothing of the crate: sources, stages, sinks and the writer all record
//! into it, so it sits below them.

pub mod endpoint;
pub mod logs;
pub mod meters;
pub mod tally;

pub use logs::init;
