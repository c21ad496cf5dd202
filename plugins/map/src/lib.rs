//! `sluice-plugin-map`: AWS Glue's ApplyMapping as a stateless batch transform — rename,
//! cast, drop and add columns, and parse string columns of JSON documents into typed ones.
//!
//! This file owns the [`Transform`] impl: running a [`Plan`] over a batch and splitting
//! the rows whose values could not be converted off to `rejected`, each with its reason.
//! The config is in [`config`], its checks in [`plan`], casts in [`cast`], derived
//! columns in [`expr`] and JSON fields in [`json`].

mod cast;
mod config;
mod expr;
mod json;
mod plan;

use std::sync::Arc;

use sluice_sdk::arrow::array::{
    ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Int64Array, RecordBatch, StringArray,
};
use sluice_sdk::arrow::compute::{is_not_null, not, or, take};
use sluice_sdk::arrow::datatypes::SchemaRef;
use sluice_sdk::arrow::util::display::{ArrayFormatter, FormatOptions};
use sluice_sdk::{ConfigError, Emitter, MAIN, Outputs, ProcessError, Transform, check_input, rows_where};

use crate::cast::Computed;
use crate::config::Config;
use crate::config::Constant;
use crate::json::Parsed;
use crate::plan::{Plan, Step};

/// The rows one step failed on.
struct Failure {
    /// The step's index in the plan.
    step: usize,
    /// Which rows failed (no nulls).
    mask: BooleanArray,
    /// The reason for each failed row, when the step gave them (null elsewhere).
    reasons: Option<StringArray>,
}

/// The running map transform.
pub struct Map {
    input: SchemaRef,
    plan: Plan,
}

impl Transform for Map {
    type Config = Config;

    fn describe(config: &Config, input: &SchemaRef) -> Result<Outputs, ConfigError> {
        let plan = Plan::build(config, input)?;
        Ok(Outputs::new(plan.main).with_lineage(MAIN).with_rejected(input))
    }

    fn open(config: Config, input: SchemaRef) -> Result<Self, ConfigError> {
        let plan = Plan::build(&config, &input)?;
        Ok(Map { input, plan })
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Emitter) -> Result<(), ProcessError> {
        check_input(&batch, &self.input)?;
        let rows = batch.num_rows();
        let mut columns = Vec::with_capacity(self.plan.main.fields().len());
        let mut failures: Vec<Failure> = Vec::new();
        for (k, step) in self.plan.steps.iter().enumerate() {
            let Computed { array, failed } = match step {
                Step::Column { input, cast } => cast.apply(batch.column(*input))?,
                Step::Constant(value) => Computed {
                    array: constant(value, rows),
                    failed: None,
                },
                Step::Derived { expr, .. } => expr.evaluate(&batch)?,
                Step::Json(json) => {
                    let Parsed { arrays, reasons } = json.apply(batch.column(json.input))?;
                    columns.extend(arrays);
                    if let Some(reasons) = reasons {
                        failures.push(Failure {
                            step: k,
                            mask: is_not_null(&reasons)?,
                            reasons: Some(reasons),
                        });
                    }
                    continue;
                }
            };
            columns.push(array);
            if let Some(mask) = failed {
                failures.push(Failure {
                    step: k,
                    mask,
                    reasons: None,
                });
            }
        }

        let Some(rejected) = any_failed(&failures)? else {
            return out.emit_aligned(MAIN, RecordBatch::try_new(self.plan.main.clone(), columns)?);
        };
        // The failed rows' columns may hold nulls the schema does not allow: pick first.
        let kept = rows_where(&not(&rejected)?);
        let columns = columns
            .iter()
            .map(|c| take(c, &kept, None))
            .collect::<Result<Vec<_>, _>>()?;
        out.emit_rows(MAIN, RecordBatch::try_new(self.plan.main.clone(), columns)?, &kept)?;
        let reasons = self.reasons(&batch, &failures, &rejected)?;
        out.reject_where(&batch, &rejected, reasons)
    }
}

impl Map {
    /// One reason per rejected row, naming every step that failed on it.
    fn reasons(
        &self,
        batch: &RecordBatch,
        failures: &[Failure],
        rejected: &BooleanArray,
    ) -> Result<StringArray, ProcessError> {
        let options = FormatOptions::default();
        let mut explainers = Vec::with_capacity(failures.len());
        for Failure { step, mask, reasons } in failures {
            let explain: Box<dyn Fn(usize) -> String> = match &self.plan.steps[*step] {
                Step::Column { input, cast } => {
                    let name = self.input.field(*input).name();
                    let target = cast.target_description();
                    let values = ArrayFormatter::try_new(batch.column(*input).as_ref(), &options)?;
                    Box::new(move |row| {
                        format!(
                            "cannot cast column {name:?} value {:?} {target}",
                            values.value(row).to_string()
                        )
                    })
                }
                Step::Derived { name, expr } => {
                    let message = format!(
                        "cannot compute column {name:?} = {:?}: the result does not fit in int64",
                        expr.source()
                    );
                    Box::new(move |_| message.clone())
                }
                Step::Json(_) => {
                    // Invariant: a `Json` step's failures carry their reasons.
                    let reasons = reasons
                        .clone()
                        .unwrap_or_else(|| StringArray::new_null(batch.num_rows()));
                    Box::new(move |row| reasons.value(row).to_owned())
                }
                // Invariant: constants never fail, so they have no mask.
                Step::Constant(_) => Box::new(|_| "constant column failed".to_owned()),
            };
            explainers.push((mask, explain));
        }
        let reasons: StringArray = (0..batch.num_rows())
            .filter(|&row| rejected.value(row))
            .map(|row| {
                let parts: Vec<String> = explainers
                    .iter()
                    .filter(|(mask, _)| mask.value(row))
                    .map(|(_, explain)| explain(row))
                    .collect();
                Some(parts.join("; "))
            })
            .collect();
        Ok(reasons)
    }
}

/// The union of the failure masks (which hold no nulls), or `None` when nothing failed.
fn any_failed(failures: &[Failure]) -> Result<Option<BooleanArray>, ProcessError> {
    let mut masks = failures.iter().map(|f| &f.mask);
    let Some(first) = masks.next() else {
        return Ok(None);
    };
    let mut any = first.clone();
    for mask in masks {
        any = or(&any, mask)?;
    }
    Ok((any.true_count() > 0).then_some(any))
}

/// A column of `rows` copies of `value`.
fn constant(value: &Constant, rows: usize) -> ArrayRef {
    match value {
        Constant::Str(s) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(s, rows))),
        Constant::Int(v) => Arc::new(Int64Array::from_value(*v, rows)),
        Constant::Float(v) => Arc::new(Float64Array::from_value(*v, rows)),
        Constant::Bool(v) => {
            let mut builder = BooleanBuilder::with_capacity(rows);
            builder.append_n(rows, *v);
            Arc::new(builder.finish())
        }
    }
}

sluice_sdk::export_transform!(Map);

#[cfg(test)]
mod tests;
