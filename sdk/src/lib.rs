//! `sluice-sdk`: write a Sluice transform as one trait impl over Arrow record batches.
//!
//! A transform author depends on this crate only. They implement [`Transform`] for a type,
//! with a `serde` config type, and export it with [`export_transform!`]; building the crate
//! for `wasm32-wasip2` yields a component that implements the `sluice:transform` WIT world.
//!
//! What the host and guests share (IPC framing, output names, [`FieldType`], the [`Duration`]
//! syntax) lives in `sluice-contract` and is re-exported here. This crate owns the guest side
//! of the contract: decoding the host's batches, typed config with key paths in errors,
//! checking input ([`check_input`]) and emitted batches against the declared schemas, and the
//! single instance slot. It must not grow per-record entry points: batches are the unit.
//!
//! ```no_run
//! use sluice_sdk::{arrow::{array::RecordBatch, datatypes::SchemaRef}, *};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { keep_every: usize }
//!
//! struct Sample { cfg: Config }
//!
//! impl Transform for Sample {
//!     type Config = Config;
//!     fn describe(cfg: &Config, input: &SchemaRef) -> Result<Outputs, ConfigError> {
//!         if cfg.keep_every == 0 {
//!             return Err(ConfigError::at(["keep_every"], "expected a positive integer"));
//!         }
//!         Ok(Outputs::new(input.clone()))
//!     }
//!     fn open(cfg: Config, _input: SchemaRef) -> Result<Self, ConfigError> {
//!         Ok(Sample { cfg })
//!     }
//!     fn process(&mut self, batch: RecordBatch, out: &mut Emitter) -> Result<(), ProcessError> {
//!         let rows: Vec<u32> = (0..batch.num_rows() as u32).step_by(self.cfg.keep_every).collect();
//!         let idx = sluice_sdk::arrow::array::UInt32Array::from(rows);
//!         out.emit(sluice_sdk::arrow::compute::take_record_batch(&batch, &idx)?)
//!     }
//! }
//!
//! export_transform!(Sample);
//! ```

mod config;
mod emit;
mod ipc;
mod outputs;
pub mod short_key;
pub mod testing;
mod transform;

#[doc(hidden)]
pub mod __private;

pub use arrow;
pub use config::ConfigError;
pub use emit::{Emitter, rows_where};
pub use outputs::Outputs;
pub use sluice_contract::{
    Duration, DurationError, DurationErrorKind, FieldType, MAIN, REASON_COLUMN, REJECTED, ROW_COLUMN, decode_batch,
    decode_schema, encode_batch, encode_schema,
};
pub use transform::{KEY_SEPARATOR, ProcessError, RestoreError, Transform, check_input, key_text};

/// Log through the host's log, tagged with the pipeline and stage.
pub mod log {
    use crate::__private::bindings::sluice::transform::log::{Level, log};

    /// Log at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    /// Log at info level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    /// Log at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
}
