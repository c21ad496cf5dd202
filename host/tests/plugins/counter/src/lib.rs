//! A stateful transform for the host's checkpoint tests: appends `seen`, the running count
//! of rows so far with the same value in the `key` column (this row included). Its state
//! (the counts) is snapshotted as JSON, so a restart that loses or replays state shows up as
//! wrong counts in the output. With `trap_on`, a batch holding that key traps *after* the
//! counts were updated, so a host that keeps the half-updated state shows it too.
//!
//! Its state is keyed by `key` (the contract's `keyed-state`): the lease tests check that
//! counts follow their keys across shard splits and merges.
//!
//! For the reload tests: `tag = N` adds a `version` column holding N (two versions of a
//! pipeline differ in it), `refuse_state = true` makes `restore` refuse any state, and
//! `trap_on_open = true` traps in `open`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;
use sluice_sdk::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use sluice_sdk::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_sdk::{ConfigError, Emitter, Outputs, ProcessError, RestoreError, Transform};

/// `[transform.config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A string column to count by.
    pub key: String,
    /// Trap (after counting) on a batch where the key column holds this value.
    #[serde(default)]
    pub trap_on: Option<String>,
    /// Add a `version` column holding this value.
    #[serde(default)]
    pub tag: Option<i64>,
    /// Refuse every state handed to `restore`.
    #[serde(default)]
    pub refuse_state: bool,
    /// Trap in `open` (after `describe` accepted the config).
    #[serde(default)]
    pub trap_on_open: bool,
}

/// Counts per key.
#[derive(Debug)]
pub struct Counter {
    key: usize,
    trap_on: Option<String>,
    tag: Option<i64>,
    refuse_state: bool,
    output: SchemaRef,
    counts: BTreeMap<String, i64>,
}

fn output(config: &Config, input: &SchemaRef) -> Result<(usize, SchemaRef), ConfigError> {
    let key = input
        .index_of(&config.key)
        .map_err(|_| ConfigError::at(["key"], format!("no column `{}` in the input", config.key)))?;
    if input.field(key).data_type() != &DataType::Utf8 {
        return Err(ConfigError::at(["key"], "the key column must be a string"));
    }
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("seen", DataType::Int64, false));
    if config.tag.is_some() {
        fields.push(Field::new("version", DataType::Int64, false));
    }
    Ok((key, Arc::new(Schema::new(fields))))
}

impl Transform for Counter {
    type Config = Config;
    const STATE_FORMAT: Option<u32> = Some(1);

    fn describe(config: &Config, input: &SchemaRef) -> Result<Outputs, ConfigError> {
        Ok(Outputs::new(output(config, input)?.1))
    }

    fn open(config: Config, input: SchemaRef) -> Result<Self, ConfigError> {
        if config.trap_on_open {
            panic!("asked to trap in open");
        }
        let (key, output) = output(&config, &input)?;
        Ok(Counter {
            key,
            trap_on: config.trap_on,
            tag: config.tag,
            refuse_state: config.refuse_state,
            output,
            counts: BTreeMap::new(),
        })
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Emitter) -> Result<(), ProcessError> {
        let keys = batch.column(self.key).as_string::<i32>();
        let seen: Int64Array = (0..keys.len())
            .map(|i| {
                let key = if keys.is_null(i) { "" } else { keys.value(i) };
                let n = self.counts.entry(key.to_owned()).or_default();
                *n += 1;
                *n
            })
            .collect();
        if let Some(poison) = &self.trap_on
            && keys.iter().any(|k| k == Some(poison.as_str()))
        {
            panic!("poison key {poison}");
        }
        let mut columns = batch.columns().to_vec();
        let rows = seen.len();
        columns.push(Arc::new(seen));
        if let Some(tag) = self.tag {
            columns.push(Arc::new(Int64Array::from(vec![tag; rows])));
        }
        out.emit(RecordBatch::try_new(self.output.clone(), columns)?)
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&self.counts).map_err(|e| e.to_string())
    }

    fn restore(&mut self, format_version: u32, data: &[u8]) -> Result<(), RestoreError> {
        if format_version != 1 || self.refuse_state {
            return Err(RestoreError::UnsupportedVersion(format_version));
        }
        self.counts = serde_json::from_slice(data).map_err(|e| RestoreError::Corrupt(e.to_string()))?;
        Ok(())
    }

    fn state_key(config: &Config, _input: &SchemaRef) -> Result<Vec<String>, ConfigError> {
        Ok(vec![config.key.clone()])
    }

    fn state_keys(&self) -> Vec<String> {
        self.counts.keys().cloned().collect()
    }

    fn retain_keys(&mut self, keep: &HashSet<String>) -> Result<(), String> {
        self.counts.retain(|k, _| keep.contains(k));
        Ok(())
    }

    /// A key counted by both: the counts add up (the rows of both were seen).
    fn absorb(&mut self, format_version: u32, data: &[u8]) -> Result<(), RestoreError> {
        if format_version != 1 || self.refuse_state {
            return Err(RestoreError::UnsupportedVersion(format_version));
        }
        let other: BTreeMap<String, i64> =
            serde_json::from_slice(data).map_err(|e| RestoreError::Corrupt(e.to_string()))?;
        for (key, n) in other {
            *self.counts.entry(key).or_default() += n;
        }
        Ok(())
    }
}

sluice_sdk::export_transform!(Counter);
