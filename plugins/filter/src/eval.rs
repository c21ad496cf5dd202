//! Evaluating a compiled predicate over a whole batch with Arrow kernels: comparisons,
//! substring tests and null tests produce boolean arrays, combined with SQL three-valued
//! `and`/`or`/`not`. Nothing here looks at individual rows.

use sluice_sdk::arrow::array::{Array, ArrayRef, BooleanArray, Datum, RecordBatch, Scalar};
use sluice_sdk::arrow::compute::kernels::cmp;
use sluice_sdk::arrow::compute::kernels::comparison::{contains, ends_with, starts_with};
use sluice_sdk::arrow::compute::{and_kleene, cast_with_options, is_not_null, is_null, not, or_kleene};
use sluice_sdk::arrow::error::ArrowError;

use crate::check::{ColumnValue, Pred, Value, strict};
use crate::parse::{CmpOp, StrOp};

/// The predicate's value for every row of `batch`: true, false or null (unknown).
pub fn evaluate(pred: &Pred, batch: &RecordBatch) -> Result<BooleanArray, ArrowError> {
    match pred {
        Pred::Or(a, b) => or_kleene(&evaluate(a, batch)?, &evaluate(b, batch)?),
        Pred::And(a, b) => {
            let left = evaluate(a, batch)?;
            // A side that is false everywhere decides the conjunction on its own.
            if left.null_count() == 0 && left.true_count() == 0 {
                return Ok(left);
            }
            and_kleene(&left, &evaluate(b, batch)?)
        }
        Pred::Not(a) => not(&evaluate(a, batch)?),
        Pred::IsNull { column, negated } => {
            let array = column_at(batch, *column)?;
            if *negated {
                is_not_null(array.as_ref())
            } else {
                is_null(array.as_ref())
            }
        }
        Pred::Compare { left, op, right } => {
            let left = Operand::of(left, batch)?;
            let right = Operand::of(right, batch)?;
            compare(left.datum(), *op, right.datum())
        }
        Pred::InList { column, list, negated } => {
            let array = column_value(column, batch)?;
            let mut any: Option<BooleanArray> = None;
            for value in list {
                let hit = cmp::eq(&array, value)?;
                any = Some(match any {
                    None => hit,
                    Some(acc) => or_kleene(&acc, &hit)?,
                });
            }
            let any = any.ok_or_else(|| ArrowError::InvalidArgumentError("empty \"in\" list".to_owned()))?;
            if *negated { not(&any) } else { Ok(any) }
        }
        Pred::StrMatch {
            column,
            op,
            pattern,
            negated,
        } => {
            let array = column_value(column, batch)?;
            let hit = match op {
                StrOp::Contains => contains(&array, pattern)?,
                StrOp::StartsWith => starts_with(&array, pattern)?,
                StrOp::EndsWith => ends_with(&array, pattern)?,
            };
            if *negated { not(&hit) } else { Ok(hit) }
        }
    }
}

fn compare(l: &dyn Datum, op: CmpOp, r: &dyn Datum) -> Result<BooleanArray, ArrowError> {
    match op {
        CmpOp::Eq => cmp::eq(l, r),
        CmpOp::NotEq => cmp::neq(l, r),
        CmpOp::Lt => cmp::lt(l, r),
        CmpOp::LtEq => cmp::lt_eq(l, r),
        CmpOp::Gt => cmp::gt(l, r),
        CmpOp::GtEq => cmp::gt_eq(l, r),
    }
}

/// A comparison side, materialised for one batch.
enum Operand<'a> {
    Array(ArrayRef),
    Scalar(&'a Scalar<ArrayRef>),
}

impl<'a> Operand<'a> {
    fn of(value: &'a Value, batch: &RecordBatch) -> Result<Self, ArrowError> {
        Ok(match value {
            Value::Column(c) => Operand::Array(column_value(c, batch)?),
            Value::Literal(s) => Operand::Scalar(s),
        })
    }

    fn datum(&self) -> &dyn Datum {
        match self {
            Operand::Array(a) => a,
            Operand::Scalar(s) => *s,
        }
    }
}

fn column_at(batch: &RecordBatch, index: usize) -> Result<&ArrayRef, ArrowError> {
    batch.columns().get(index).ok_or_else(|| {
        ArrowError::InvalidArgumentError(format!(
            "batch has {} columns, predicate reads column {index}",
            batch.num_columns()
        ))
    })
}

fn column_value(column: &ColumnValue, batch: &RecordBatch) -> Result<ArrayRef, ArrowError> {
    let array = column_at(batch, column.index)?;
    match &column.cast_to {
        Some(to) => cast_with_options(array, to, &strict()),
        None => Ok(array.clone()),
    }
}
