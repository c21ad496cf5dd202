//! `anomaly`: a per-key streaming anomaly detector over one numeric column.
//!
//! ```toml
//! [transform.config]
//! key = "device_id"          # optional: string or integer column; absent = one global series
//! value = "temperature"      # numeric column (any int or float type)
//! method = "ewma"            # "ewma" (default) or "zscore"
//! alpha = 0.1                # ewma only: smoothing, 0 < alpha ≤ 1 (default 0.1)
//! window = 60                # zscore only: the last `window` values, 2 ≤ window ≤ 100000 (default 60)
//! threshold = 4.0            # |value − mean| / stddev ≥ threshold ⇒ anomaly; > 0 (default 4)
//! warmup = 10                # the first `warmup` values per key are never flagged (default 10)
//! route = "flag"             # "flag" (default) or "split"
//! update_on_anomaly = false  # whether an anomalous value updates the statistics (default false)
//! reset_after = 5            # update_on_anomaly = false only: this many anomalies in a row are a
//!                            # level shift, the key starts afresh from the last one; 0 = never (default 5)
//! max_keys = 100000          # keys held; past it the least recently seen is forgotten (default 100000)
//! time_column = "event_time" # with expire_after: a timestamp column (any unit, any zone), the event time
//! expire_after = "1h"        # forget a key whose latest event time is this far behind the watermark:
//!                            # integers with units d, h, m, s, ms, largest first ("90s", "1h30m"); > 0
//! ```
//!
//! Output `main` is the input columns plus `is_anomaly` (boolean, non-null) and
//! `anomaly_score` (float64): `|value − mean| / stddev` against the key's statistics
//! *before* the row, null during warm-up, for the first value of a key, for null, NaN or
//! infinite values (which pass through untouched), and when the standard deviation is 0 and
//! the value equals the mean; a value differing from a mean with standard deviation 0
//! scores `+inf` and is an anomaly. EWMA and z-score arithmetic are in `detector`. With
//! `route = "split"`, flagged rows go instead to a second output, `anomalies`, of the same
//! schema (which this version of the host does not route yet: it refuses such a pipeline).
//! It reads only `key`, `value` and `time_column` (`reads`, the contract's `projection`):
//! the host sends those and puts the other input columns back on the scored rows.
//!
//! With `update_on_anomaly = false` a spike does not mask the next one; a lasting level shift
//! (or a drifting series that got one value past the threshold, after which its frozen
//! statistics would flag it for as long as it stays away) is flagged `reset_after` times,
//! then the key starts afresh from the shifted value and warms up again.
//!
//! State is one series per key value (a null key is a key of its own), at most `max_keys`
//! of them: a new key beyond that forgets the key seen least recently, which starts afresh,
//! warm-up included, if it returns. Rows are scored in batch order, and the output depends
//! only on the rows and the config, across snapshot and restore too.
//!
//! The state is keyed by `key` (the contract's `keyed-state`): where several instances share
//! a Kinesis stream, each key's series follows it when shards split or merge; a key that
//! both merged states hold keeps the series that has seen more values.
//!
//! With `expire_after`, keys are also forgotten by event time, the same way. A key's latest
//! event time is the greatest `time_column` value of its scored rows (a null time does not
//! count; the row is still scored). When the watermark advances to `w`, every key whose
//! latest event time is before `w − expire_after` is forgotten; one exactly at it is kept.
//! A key with no event time yet (only null times so far, or restored from a format 1
//! snapshot) counts as seen at the first watermark after. `time_column` and `expire_after`
//! go together: either alone is a config error. Advancing the watermark emits nothing, and
//! what is forgotten depends only on the rows and watermarks, not on batch boundaries.
//!
//! This file owns the [`Transform`] impl; the config is in `config` (durations in
//! `duration`), its checks and the output schema in `plan`, keys in `key`, the series held
//! and their bounds in `store` (which keys may be due to expire in `expiry`), per-batch
//! scoring in `score` and snapshots in `snapshot`.

mod config;
mod detector;
mod duration;
mod expiry;
mod key;
mod plan;
mod score;
mod snapshot;
mod store;

use std::collections::HashSet;
use std::sync::Arc;

use sluice_sdk::arrow::array::{ArrayRef, RecordBatch};
use sluice_sdk::arrow::compute::not;
use sluice_sdk::arrow::datatypes::SchemaRef;
use sluice_sdk::{ConfigError, Emitter, MAIN, Outputs, ProcessError, RestoreError, Transform, check_input};

pub use crate::config::Config;
use crate::plan::Plan;
pub use crate::plan::{ANOMALIES, ANOMALY_SCORE, IS_ANOMALY};
use crate::store::Store;

/// The running anomaly detector.
#[derive(Debug)]
pub struct Anomaly {
    input: SchemaRef,
    plan: Plan,
    store: Store,
}

impl Anomaly {
    /// How many keys are held (at most `max_keys`).
    pub fn tracked_keys(&self) -> usize {
        self.store.len()
    }

    /// Forget the keys idle for `expire_after` of event time at `watermark_micros`.
    fn expire(&mut self, watermark_micros: i64) {
        self.store.expire(watermark_micros);
    }
}

impl Transform for Anomaly {
    type Config = Config;
    const STATE_FORMAT: Option<u32> = Some(snapshot::FORMAT);

    fn describe(config: &Config, input: &SchemaRef) -> Result<Outputs, ConfigError> {
        let plan = Plan::build(config, input)?;
        let outputs = Outputs::new(plan.output.clone()).with_lineage(MAIN);
        Ok(if plan.split {
            outputs.with_output(ANOMALIES, plan.output).with_lineage(ANOMALIES)
        } else {
            outputs
        })
    }

    /// The key, value and time columns: the host keeps the others and puts them back on
    /// the scored rows.
    fn reads(config: &Config, input: &SchemaRef) -> Result<Option<Vec<String>>, ConfigError> {
        Plan::build(config, input)?;
        let columns = config.key.iter().chain([&config.value]).chain(&config.time_column);
        Ok(Some(columns.cloned().collect()))
    }

    fn open(config: Config, input: SchemaRef) -> Result<Self, ConfigError> {
        let plan = Plan::build(&config, &input)?;
        let store = Store::new(plan.max_keys, plan.expiry.map(|e| e.after));
        Ok(Anomaly { input, plan, store })
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Emitter) -> Result<(), ProcessError> {
        check_input(&batch, &self.input)?;
        let scored = score::score(&self.plan, &mut self.store, &batch)?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(scored.flags.clone()));
        columns.push(Arc::new(scored.scores));
        let rows = RecordBatch::try_new(self.plan.output.clone(), columns)?;
        if !self.plan.split {
            return out.emit_aligned(MAIN, rows);
        }
        out.emit_where(MAIN, &rows, &not(&scored.flags)?)?;
        out.emit_where(ANOMALIES, &rows, &scored.flags)
    }

    /// Only forgets idle keys: nothing is emitted.
    fn advance_watermark(&mut self, watermark_micros: i64, _out: &mut Emitter) -> Result<(), ProcessError> {
        self.expire(watermark_micros);
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        snapshot::write(&self.plan, &self.store)
    }

    fn restore(&mut self, format_version: u32, data: &[u8]) -> Result<(), RestoreError> {
        if !snapshot::reads(format_version) {
            return Err(RestoreError::UnsupportedVersion(format_version));
        }
        self.store = snapshot::read(&self.plan, format_version, data).map_err(RestoreError::Corrupt)?;
        Ok(())
    }

    fn state_key(config: &Config, input: &SchemaRef) -> Result<Vec<String>, ConfigError> {
        Plan::build(config, input)?;
        Ok(config.key.iter().cloned().collect())
    }

    fn state_keys(&self) -> Vec<String> {
        self.store.iter().map(|(key, _, _)| snapshot::key_text(key)).collect()
    }

    fn retain_keys(&mut self, keep: &HashSet<String>) -> Result<(), String> {
        let gone: Vec<Vec<u8>> = self
            .store
            .iter()
            .filter(|(key, _, _)| !keep.contains(&snapshot::key_text(key)))
            .map(|(key, _, _)| key.clone())
            .collect();
        for key in gone {
            self.store.forget(&key);
        }
        Ok(())
    }

    /// A key both states hold keeps the series that has seen more values.
    fn absorb(&mut self, format_version: u32, data: &[u8]) -> Result<(), RestoreError> {
        if !snapshot::reads(format_version) {
            return Err(RestoreError::UnsupportedVersion(format_version));
        }
        snapshot::absorb(&self.plan, &mut self.store, format_version, data).map_err(RestoreError::Corrupt)
    }
}

sluice_sdk::export_transform!(Anomaly);

#[cfg(test)]
mod tests;
