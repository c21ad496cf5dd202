//! `filter`: keep the rows of each batch for which a SQL-flavoured predicate is true.
//!
//! ```toml
//! [transform.config]
//! predicate = "temperature > 25 and (device_id starts_with 'rasp' or humidity is null)"
//! ```
//!
//! This file owns the [`Transform`] implementation: the predicate is parsed (`lex`, `parse`) and
//! type-checked against the input schema (`check`) in `describe` and `open`; `process`
//! evaluates the compiled predicate with Arrow kernels (`eval`) and filters the batch. As
//! in SQL's `WHERE`, a row whose predicate is null (unknown) is dropped. The output `main`
//! has the input schema; the transform keeps no state. It reads only the columns the
//! predicate names (`reads`): the host sends those and keeps the others for the rows kept.
//!
//! Strings are single- or double-quoted; the quote character doubled stands for itself
//! (`'it''s'`), and backslashes have no special meaning. See `parse` for the grammar.

mod check;
mod eval;
mod lex;
mod parse;

use serde::Deserialize;
use sluice_sdk::arrow::array::RecordBatch;
use sluice_sdk::arrow::datatypes::{Schema, SchemaRef};
use sluice_sdk::{ConfigError, Emitter, MAIN, Outputs, ProcessError, Transform};

use crate::check::Pred;

/// The `[transform.config]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The condition a row must satisfy to be kept.
    pub predicate: String,
}

/// The running filter: the compiled predicate and the schema it was checked against.
#[derive(Debug)]
pub struct Filter {
    predicate: Pred,
    schema: SchemaRef,
}

/// Parse `predicate`; errors point at the `predicate` key.
fn parsed(predicate: &str) -> Result<parse::Expr, ConfigError> {
    parse::parse(predicate).map_err(|e| ConfigError::at(["predicate"], e.message))
}

/// Type-check a parsed predicate; errors point at the `predicate` key.
fn typed(expr: &parse::Expr, schema: &Schema) -> Result<Pred, ConfigError> {
    check::check(expr, schema).map_err(|e| ConfigError::at(["predicate"], e))
}

/// Parse and type-check `predicate`; errors point at the `predicate` key.
fn compile(predicate: &str, schema: &Schema) -> Result<Pred, ConfigError> {
    typed(&parsed(predicate)?, schema)
}

impl Transform for Filter {
    type Config = Config;

    fn describe(config: &Config, input: &SchemaRef) -> Result<Outputs, ConfigError> {
        compile(&config.predicate, input)?;
        Ok(Outputs::new(input.clone()).with_lineage(MAIN))
    }

    /// Only the columns the predicate names: the host keeps the rest and puts them back on
    /// the rows kept.
    fn reads(config: &Config, input: &SchemaRef) -> Result<Option<Vec<String>>, ConfigError> {
        let expr = parsed(&config.predicate)?;
        typed(&expr, input)?;
        Ok(Some(expr.columns()))
    }

    fn open(config: Config, input: SchemaRef) -> Result<Self, ConfigError> {
        Ok(Filter {
            predicate: compile(&config.predicate, &input)?,
            schema: input,
        })
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Emitter) -> Result<(), ProcessError> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(ProcessError::InvalidInput(format!(
                "batch schema {:?} differs from the schema given at open {:?}",
                batch.schema(),
                self.schema
            )));
        }
        let keep = eval::evaluate(&self.predicate, &batch)?;
        if keep.true_count() == batch.num_rows() {
            return out.emit_aligned(MAIN, batch);
        }
        out.emit_where(MAIN, &batch, &keep)
    }
}

sluice_sdk::export_transform!(Filter);

#[cfg(test)]
mod tests;
