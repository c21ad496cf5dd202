//! `window`: event-time windowed aggregation with Flink's semantics (spec §8, FL-01…FL-09).
//!
//! ```toml
//! [transform.config]
//! time_column = "event_time"                    # timestamp (any unit/zone) or int64 epoch millis
//! window = { type = "tumbling", size = "1m" }   # or hopping (size, slide), or session (gap);
//!                                               # tumbling/hopping take an optional offset
//! group_by = ["ticker"]                         # string, integer or boolean columns
//! aggregates = [ { fn = "avg", column = "price", as = "avg_price" }, { fn = "count", as = "n" } ]
//! allowed_lateness = "0s"                       # optional
//! ```
//!
//! Windows are `[start, end)` in microseconds, aligned to the epoch plus `offset`; a hopping
//! row belongs to every window containing it; a session row opens `[t, t + gap)` per key,
//! and sessions that intersect or touch merge. A window fires when `advance_watermark(w)`
//! has `w ≥ end − 1`, and `finish` fires every open window. A row is late when
//! `time + allowed_lateness ≤ watermark`: it goes to `rejected` with reason `late`, as a
//! row with a null time does with `null event time`. With `allowed_lateness > 0`, a fired
//! window is kept until the watermark reaches `end − 1 + allowed_lateness`; a late row
//! within that bound updates it and the window fires again, at the end of the `process`
//! call, with its updated aggregates: downstream sees several results for that window and
//! keeps the last (an upsert on `window_start`, `window_end` and the key).
//!
//! Results come in order of `window_end`, `window_start`, then key (nulls first, then by
//! value), so the output is the same on every run and across snapshot and restore.
//!
//! This file owns the [`Transform`] impl; the config is in [`config`], its checks and the
//! output schema in [`plan`], window arithmetic in [`window`], per-batch bucketing in
//! [`ingest`], the open windows in [`store`], aggregates in [`accumulate`], and snapshots
//! in [`snapshot`].
//!
//! The state is keyed by `group_by` (the contract's `keyed-state`): where several instances
//! share a Kinesis stream, each key's open windows follow it when shards split or merge.

use std::collections::HashSet;

mod accumulate;
mod config;
mod ingest;
mod key;
mod output;
mod plan;
mod snapshot;
mod store;
mod value;
mod window;

use sluice_sdk::arrow::array::{RecordBatch, StringArray, UInt32Array};
use sluice_sdk::arrow::datatypes::SchemaRef;
use sluice_sdk::{ConfigError, Emitter, Outputs, ProcessError, RestoreError, Transform, check_input};

pub use crate::config::Config;
use crate::plan::Plan;
use crate::store::Store;

/// The running window transform.
#[derive(Debug)]
pub struct Window {
    input: SchemaRef,
    plan: Plan,
    store: Store,
    /// The greatest watermark seen; `i64::MIN` before the first.
    watermark: i64,
}

impl Window {
    /// How many windows are open. Windows are forgotten once past their lateness, so this
    /// stays bounded by the windows rows can still reach.
    pub fn open_windows(&self) -> usize {
        self.store.window_count()
    }

    /// How many (window, key) groups are held.
    pub fn open_groups(&self) -> usize {
        self.store.group_count()
    }

    /// Emit every changed window that is due at the current watermark.
    fn fire(&mut self, out: &mut Emitter) -> Result<(), ProcessError> {
        let fired = self.store.fire(self.watermark);
        if fired.is_empty() {
            return Ok(());
        }
        out.emit(output::batch(&self.plan, &fired)?)
    }
}

impl Transform for Window {
    type Config = Config;
    const STATE_FORMAT: Option<u32> = Some(1);

    fn describe(config: &Config, input: &SchemaRef) -> Result<Outputs, ConfigError> {
        let plan = Plan::build(config, input)?;
        Ok(Outputs::new(plan.main).with_rejected(input))
    }

    fn open(config: Config, input: SchemaRef) -> Result<Self, ConfigError> {
        let plan = Plan::build(&config, &input)?;
        Ok(Window {
            input,
            plan,
            store: Store::default(),
            watermark: i64::MIN,
        })
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Emitter) -> Result<(), ProcessError> {
        check_input(&batch, &self.input)?;
        let aside = ingest::ingest(&self.plan, &mut self.store, self.watermark, &batch)?;
        if !aside.rows.is_empty() {
            out.reject_rows(&batch, &UInt32Array::from(aside.rows), StringArray::from(aside.reasons))?;
        }
        // Late rows within the allowed lateness update windows that already fired.
        self.fire(out)
    }

    fn advance_watermark(&mut self, watermark_micros: i64, out: &mut Emitter) -> Result<(), ProcessError> {
        self.watermark = self.watermark.max(watermark_micros);
        self.fire(out)?;
        self.store.expire(self.watermark, self.plan.lateness);
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), ProcessError> {
        self.watermark = i64::MAX;
        self.fire(out)?;
        self.store.clear();
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        snapshot::write(&self.store, self.watermark)
    }

    fn restore(&mut self, format_version: u32, data: &[u8]) -> Result<(), RestoreError> {
        if format_version != 1 {
            return Err(RestoreError::UnsupportedVersion(format_version));
        }
        let (store, watermark) = snapshot::read(&self.plan, data).map_err(RestoreError::Corrupt)?;
        self.store = store;
        self.watermark = watermark;
        Ok(())
    }

    fn state_key(config: &Config, input: &SchemaRef) -> Result<Vec<String>, ConfigError> {
        Plan::build(config, input)?;
        Ok(config.group_by.clone())
    }

    fn state_keys(&self) -> Vec<String> {
        let kinds = self.key_kinds();
        self.store.keys().filter_map(|k| key::text(k, &kinds)).collect()
    }

    fn retain_keys(&mut self, keep: &HashSet<String>) -> Result<(), String> {
        let kinds = self.key_kinds();
        self.store
            .retain(|k| key::text(k, &kinds).is_some_and(|t| keep.contains(&t)));
        Ok(())
    }

    /// Groups of the same window and key in both (or sessions of a key that touch) fold
    /// together, as merging sessions do: counts and sums add, min/max/first/last pick.
    fn absorb(&mut self, format_version: u32, data: &[u8]) -> Result<(), RestoreError> {
        if format_version != 1 {
            return Err(RestoreError::UnsupportedVersion(format_version));
        }
        self.watermark =
            snapshot::absorb(&self.plan, &mut self.store, self.watermark, data).map_err(RestoreError::Corrupt)?;
        Ok(())
    }
}

impl Window {
    fn key_kinds(&self) -> Vec<value::Kind> {
        self.plan.keys.iter().map(|k| k.kind).collect()
    }
}

sluice_sdk::export_transform!(Window);

#[cfg(test)]
mod tests;
