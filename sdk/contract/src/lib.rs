//! `sluice-contract`: what the Sluice host and its transform components share, beyond the
//! WIT interface itself (`wit/`). The host depends on this crate, not on the guest SDK;
//! `sluice-sdk` re-exports all of it for transform authors. It builds for the host and for
//! `wasm32-wasip2` alike, so it holds nothing that is only for one side.
//!
//! - [`ipc`]: Arrow IPC framing of schemas and batches as they cross the boundary.
//! - [`MAIN`], [`REJECTED`], [`REASON_COLUMN`], [`ROW_COLUMN`]: the output and column names the contract fixes.
//! - [`FieldType`]: the column-type names of pipeline files and plugin configs.
//! - [`Duration`]: the one syntax of durations, in pipeline files and plugin configs alike.
//!
//! # Durations
//!
//! A duration is one or more parts, each an unsigned decimal integer directly followed by a
//! unit, with the units largest first and each at most once:
//!
//! ```text
//! duration = ["-"] part { part }
//! part     = digit { digit } unit
//! unit     = "d" | "h" | "m" | "min" | "s" | "ms"
//! ```
//!
//! | unit        | length        |
//! |-------------|---------------|
//! | `d`         | 24 hours      |
//! | `h`         | 60 minutes    |
//! | `m`, `min`  | 60 seconds    |
//! | `s`         | 1000 ms       |
//! | `ms`        | a millisecond |
//!
//! So `"500ms"`, `"5s"`, `"1m"`, `"15min"`, `"1h30m"`, `"2d"`, `"1m30s250ms"` and `"0s"`
//! are durations; `"90m"` is too (a part may exceed the next unit up). Not durations:
//! `""`, `"30"` (no unit), `"1.5h"` (no fractions: write `"1h30m"`), `"1 h"`, `" 1h"`
//! (no spaces anywhere), `"1H"` (units are lower-case), `"1w"`, `"1sec"`, `"30m1h"`
//! (smaller unit first) and `"1h1h"` (unit twice). A zero length is a valid duration; whether
//! a setting accepts it is the setting's business. The leading `-` is accepted only by
//! [`Duration::parse_signed`], for settings that may be negative (a window grid's offset);
//! [`Duration::parse`] refuses it. A duration is at most [`Duration::MAX`] long (about
//! 292 000 years, `i64::MAX` microseconds), so it converts to microseconds without overflow;
//! anything longer is refused, never wrapped.
//!
//! This is the union of what the host, the `window` plugin and the `anomaly` plugin accepted
//! before they shared it: the host's `min`, the window's sign, the anomaly's days and parts.
//! Errors name the text, what is wrong with it and the expected form:
//!
//! ```
//! use sluice_contract::Duration;
//!
//! assert_eq!(Duration::parse("1h30m").map(Duration::as_millis), Ok(5_400_000));
//! assert_eq!(Duration::parse("90s").map(|d| d.to_string()), Ok("1m30s".to_owned()));
//! let err = Duration::parse("1.5h").unwrap_err().to_string();
//! assert!(err.starts_with("invalid duration \"1.5h\": '.' after 1: fractions are not allowed"), "{err}");
//! ```
//!
//! [`Duration`]'s `Display` writes the canonical form (largest units first, zero parts left
//! out, `"0s"` for zero), which reads back to the same value.

mod duration;
pub mod ipc;
mod names;
mod types;

pub use arrow;
pub use duration::{Duration, DurationError, DurationErrorKind};
pub use ipc::{decode_batch, decode_schema, encode_batch, encode_schema};
pub use names::{MAIN, REASON_COLUMN, REJECTED, ROW_COLUMN, find_row_column, row_column_index};
pub use types::FieldType;
