//! Type-checking a parsed predicate against the input schema, producing the compiled
//! predicate that `eval` runs: columns resolved to indices, every comparison given one
//! common Arrow type (with the column casts it needs), and literals turned into one-row
//! Arrow scalars of that type.
//!
//! Comparison types:
//! - integer column vs integer literals: the column's type when every literal fits it,
//!   otherwise `Decimal128(38, 0)` (which holds every integer of both);
//! - integer column vs any float literal, and decimal columns: `Float64`;
//! - float column vs number literals: the column's float type;
//! - string column vs string literal: the column's string type;
//! - timestamp or date column vs string literal: the column's type, the literal parsed by
//!   the cast kernel ('2020-04-16 11:33:23', '2020-04-16T11:33:23Z', '2020-04-16', …). A
//!   timestamp column with a named time zone (not an offset) reads a literal without an
//!   offset as UTC, as the guest has no time-zone database;
//! - boolean column vs `true`/`false`;
//! - column vs column: the same type, or a common one (integers widened, other numerics as
//!   `Float64`, strings as `LargeUtf8`, timestamps as the finer unit without zone, dates as
//!   `Date64`).
//!
//! Dictionary-encoded columns are typed as their values; the kernels read them directly.

use std::sync::Arc;

use sluice_sdk::arrow::array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int64Array, Scalar, StringArray, make_array,
};
use sluice_sdk::arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use sluice_sdk::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use sluice_sdk::arrow::error::ArrowError;

use crate::parse::{CmpOp, Column, Expr, LitValue, Literal, Operand, StrOp};

/// A compiled predicate, evaluated by `eval` with Arrow kernels.
#[derive(Debug)]
pub enum Pred {
    Or(Box<Pred>, Box<Pred>),
    And(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
    Compare {
        left: Value,
        op: CmpOp,
        right: Value,
    },
    IsNull {
        column: usize,
        negated: bool,
    },
    InList {
        column: ColumnValue,
        list: Vec<Scalar<ArrayRef>>,
        negated: bool,
    },
    StrMatch {
        column: ColumnValue,
        op: StrOp,
        pattern: Scalar<ArrayRef>,
        negated: bool,
    },
}

/// One side of a comparison.
#[derive(Debug)]
pub enum Value {
    Column(ColumnValue),
    Literal(Scalar<ArrayRef>),
}

/// A column of the batch, cast to the comparison type if it is not already of it.
#[derive(Debug)]
pub struct ColumnValue {
    pub index: usize,
    pub cast_to: Option<DataType>,
}

/// Cast options that fail rather than turning unrepresentable values into nulls.
pub fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        ..Default::default()
    }
}

/// Type-check `expr` against `schema`. The error is one sentence naming what is wrong.
pub fn check(expr: &Expr, schema: &Schema) -> Result<Pred, String> {
    Ok(match expr {
        Expr::Or(a, b) => Pred::Or(Box::new(check(a, schema)?), Box::new(check(b, schema)?)),
        Expr::And(a, b) => Pred::And(Box::new(check(a, schema)?), Box::new(check(b, schema)?)),
        Expr::Not(a) => Pred::Not(Box::new(check(a, schema)?)),
        Expr::IsNull { column, negated } => Pred::IsNull {
            column: resolve(column, schema)?.0,
            negated: *negated,
        },
        Expr::Compare { left, op, right } => compare(left, *op, right, schema)?,
        Expr::InList { column, list, negated } => {
            let (index, field) = resolve(column, schema)?;
            let (cast_to, list) = against_literals(column, field, list)?;
            Pred::InList {
                column: ColumnValue { index, cast_to },
                list,
                negated: *negated,
            }
        }
        Expr::StrMatch {
            column,
            op,
            pattern,
            negated,
        } => {
            let (index, field) = resolve(column, schema)?;
            let logical = logical_type(field.data_type());
            if category(logical) != Category::String {
                return Err(format!(
                    "\"{}\" needs a string column, but column \"{}\" (at position {}) is {}",
                    op.keyword(),
                    column.name,
                    column.position,
                    field.data_type()
                ));
            }
            let (cast_to, mut list) = against_literals(column, field, std::slice::from_ref(pattern))?;
            let pattern = list.pop().ok_or("internal error: no compiled pattern")?;
            Pred::StrMatch {
                column: ColumnValue { index, cast_to },
                op: *op,
                pattern,
                negated: *negated,
            }
        }
    })
}

fn resolve<'s>(column: &Column, schema: &'s Schema) -> Result<(usize, &'s Field), String> {
    schema.column_with_name(&column.name).ok_or_else(|| {
        let available: Vec<String> = schema.fields().iter().map(|f| format!("\"{}\"", f.name())).collect();
        let available = if available.is_empty() {
            "none".to_owned()
        } else {
            available.join(", ")
        };
        format!(
            "unknown column \"{}\" at position {}; available columns: {available}",
            column.name, column.position
        )
    })
}

fn compare(left: &Operand, op: CmpOp, right: &Operand, schema: &Schema) -> Result<Pred, String> {
    let (left, right) = match (left, right) {
        (Operand::Column(l), Operand::Column(r)) => {
            let (li, lf) = resolve(l, schema)?;
            let (ri, rf) = resolve(r, schema)?;
            let (lt, rt) = (logical_type(lf.data_type()), logical_type(rf.data_type()));
            let common = common_type(lt, rt).ok_or_else(|| {
                format!(
                    "type mismatch: cannot compare column \"{}\" ({}) with column \"{}\" ({}) at position {}",
                    l.name,
                    lf.data_type(),
                    r.name,
                    rf.data_type(),
                    l.position
                )
            })?;
            (
                Value::Column(ColumnValue {
                    index: li,
                    cast_to: column_cast(l, lf, &common)?,
                }),
                Value::Column(ColumnValue {
                    index: ri,
                    cast_to: column_cast(r, rf, &common)?,
                }),
            )
        }
        (Operand::Column(c), Operand::Literal(lit)) | (Operand::Literal(lit), Operand::Column(c)) => {
            let (index, field) = resolve(c, schema)?;
            let (cast_to, mut scalars) = against_literals(c, field, std::slice::from_ref(lit))?;
            let scalar = scalars.pop().ok_or("internal error: no compiled literal")?;
            let column = Value::Column(ColumnValue { index, cast_to });
            if matches!(left, Operand::Column(_)) {
                (column, Value::Literal(scalar))
            } else {
                (Value::Literal(scalar), column)
            }
        }
        (Operand::Literal(l), Operand::Literal(_)) => {
            // The parser never builds this; keep the error meaningful all the same.
            return Err(format!(
                "a comparison needs at least one column (at position {})",
                l.position
            ));
        }
    };
    Ok(Pred::Compare { left, op, right })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Int,
    Float,
    Decimal,
    String,
    Bool,
    Temporal,
    Other,
}

fn category(t: &DataType) -> Category {
    use DataType::*;
    match t {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Category::Int,
        Float16 | Float32 | Float64 => Category::Float,
        Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => Category::Decimal,
        Utf8 | LargeUtf8 | Utf8View => Category::String,
        Boolean => Category::Bool,
        Timestamp(..) | Date32 | Date64 => Category::Temporal,
        _ => Category::Other,
    }
}

/// The type the kernels see: a dictionary's values.
fn logical_type(t: &DataType) -> &DataType {
    match t {
        DataType::Dictionary(_, values) => values,
        t => t,
    }
}

fn lit_kind(lit: &Literal) -> &'static str {
    match lit.value {
        LitValue::Int(_) => "an integer",
        LitValue::Float(_) => "a float",
        LitValue::Str(_) => "a string",
        LitValue::Bool(_) => "a boolean",
    }
}

/// The comparison type of `column` against `lits`: the column's cast (if any) and each
/// literal as a scalar of that type.
fn against_literals(
    column: &Column,
    field: &Field,
    lits: &[Literal],
) -> Result<(Option<DataType>, Vec<Scalar<ArrayRef>>), String> {
    let logical = logical_type(field.data_type());
    let cat = category(logical);
    let mismatch = |lit: &Literal| {
        format!(
            "type mismatch: column \"{}\" (at position {}) is {} but {} (at position {}) is {} literal",
            column.name,
            column.position,
            field.data_type(),
            lit.text,
            lit.position,
            lit_kind(lit)
        )
    };
    for lit in lits {
        let ok = match (&lit.value, cat) {
            (LitValue::Int(_) | LitValue::Float(_), c) => {
                matches!(c, Category::Int | Category::Float | Category::Decimal)
            }
            (LitValue::Str(_), c) => matches!(c, Category::String | Category::Temporal),
            (LitValue::Bool(_), c) => c == Category::Bool,
        };
        if !ok {
            return Err(mismatch(lit));
        }
    }
    let any_float = lits.iter().any(|l| matches!(l.value, LitValue::Float(_)));
    let target = match cat {
        Category::Decimal => DataType::Float64,
        Category::Int if any_float => DataType::Float64,
        Category::Int => {
            let all_fit = lits
                .iter()
                .all(|l| raw_scalar(l).and_then(|a| cast(&a, logical)).is_ok());
            if all_fit {
                logical.clone()
            } else {
                DataType::Decimal128(38, 0)
            }
        }
        _ => logical.clone(),
    };
    let mut scalars = Vec::with_capacity(lits.len());
    for lit in lits {
        let array = raw_scalar(lit)
            .and_then(|a| literal_cast(&a, &target))
            .map_err(|e| match cat {
                Category::Temporal => format!(
                    "{} (at position {}) is not a valid {} for column \"{}\": {e}; write e.g. '2020-04-16 11:33:23' or '2020-04-16T11:33:23Z'",
                    lit.text,
                    lit.position,
                    field.data_type(),
                    column.name
                ),
                _ => format!("{}: {e}", mismatch(lit)),
            })?;
        scalars.push(Scalar::new(array));
    }
    Ok((column_cast(column, field, &target)?, scalars))
}

/// The cast `column` needs to be compared as `target`, if any.
fn column_cast(column: &Column, field: &Field, target: &DataType) -> Result<Option<DataType>, String> {
    if logical_type(field.data_type()) == target {
        return Ok(None);
    }
    if !can_cast_types(field.data_type(), target) {
        return Err(format!(
            "column \"{}\" ({}) cannot be cast to {target} for comparison",
            column.name,
            field.data_type()
        ));
    }
    Ok(Some(target.clone()))
}

fn cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    cast_with_options(array, to, &strict())
}

/// Cast a literal to the comparison type. Timestamps with a zone the guest cannot resolve
/// (IANA names need a time-zone database) are parsed as UTC and given the zone afterwards:
/// the stored values are UTC instants either way.
fn literal_cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    match (array.data_type(), to) {
        (DataType::Utf8, DataType::Timestamp(unit, Some(_))) => match cast(array, to) {
            Ok(a) => Ok(a),
            Err(ArrowError::ParseError(m)) if m.starts_with("Invalid timezone") => {
                let utc = cast(array, &DataType::Timestamp(*unit, None))?;
                let data = utc.to_data().into_builder().data_type(to.clone()).build()?;
                Ok(make_array(data))
            }
            Err(e) => Err(e),
        },
        _ => cast(array, to),
    }
}

/// A literal as a one-row array of its natural type.
fn raw_scalar(lit: &Literal) -> Result<ArrayRef, ArrowError> {
    Ok(match &lit.value {
        LitValue::Int(v) => match i64::try_from(*v) {
            Ok(v) => Arc::new(Int64Array::from(vec![v])),
            Err(_) => Arc::new(Decimal128Array::from(vec![*v]).with_precision_and_scale(38, 0)?),
        },
        LitValue::Float(v) => Arc::new(Float64Array::from(vec![*v])),
        LitValue::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        LitValue::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
    })
}

/// The type two columns are compared as, or `None` when they cannot be compared.
fn common_type(l: &DataType, r: &DataType) -> Option<DataType> {
    use DataType::*;
    let (lc, rc) = (category(l), category(r));
    if l == r {
        return (!l.is_nested()).then(|| l.clone());
    }
    Some(match (lc, rc) {
        (Category::Int, Category::Int) => common_integer(l, r),
        (Category::Int | Category::Float | Category::Decimal, Category::Int | Category::Float | Category::Decimal) => {
            Float64
        }
        (Category::String, Category::String) => LargeUtf8,
        (Category::Temporal, Category::Temporal) => match (l, r) {
            (Timestamp(lu, _), Timestamp(ru, _)) => Timestamp(finer(*lu, *ru), None),
            (Date32 | Date64, Date32 | Date64) => Date64,
            _ => return None,
        },
        _ => return None,
    })
}

fn common_integer(l: &DataType, r: &DataType) -> DataType {
    use DataType::*;
    let width = |t: &DataType| t.primitive_width().unwrap_or(8);
    let (lw, rw) = (width(l), width(r));
    match (l.is_signed_integer(), r.is_signed_integer()) {
        (true, true) | (false, false) => {
            if lw >= rw {
                l.clone()
            } else {
                r.clone()
            }
        }
        // Mixed signedness: Int64 holds every unsigned value narrower than 64 bits.
        (true, false) if rw < 8 => Int64,
        (false, true) if lw < 8 => Int64,
        _ => Decimal128(38, 0),
    }
}

fn finer(a: TimeUnit, b: TimeUnit) -> TimeUnit {
    let rank = |u: TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    if rank(a) >= rank(b) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("temperature", DataType::Float64, true),
            Field::new("device_id", DataType::Utf8, true),
            Field::new("count", DataType::Int8, true),
            Field::new("big", DataType::UInt64, true),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("ok", DataType::Boolean, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("Europe/Paris".into())),
                true,
            ),
            Field::new("ts_s", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new(
                "tag",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
        ])
    }

    fn compile(src: &str) -> Result<Pred, String> {
        check(&parse(src).map_err(|e| e.message)?, &schema())
    }

    fn cast_of(src: &str) -> Option<DataType> {
        match compile(src).unwrap() {
            Pred::Compare {
                left: Value::Column(c), ..
            }
            | Pred::Compare {
                right: Value::Column(c),
                ..
            }
            | Pred::InList { column: c, .. } => c.cast_to,
            p => panic!("unexpected {p:?}"),
        }
    }

    #[test]
    fn an_unknown_column_is_named_with_the_available_ones() {
        let err = compile("temprature > 3").unwrap_err();
        assert_eq!(
            err,
            "unknown column \"temprature\" at position 0; available columns: \"temperature\", \"device_id\", \"count\", \"big\", \"price\", \"ok\", \"ts\", \"ts_s\", \"tag\""
        );
    }

    #[test]
    fn a_string_column_against_a_number_names_both_types() {
        assert_eq!(
            compile("device_id = 25").unwrap_err(),
            "type mismatch: column \"device_id\" (at position 0) is Utf8 but 25 (at position 12) is an integer literal"
        );
    }

    #[test]
    fn contains_on_a_numeric_column_is_refused() {
        assert_eq!(
            compile("temperature contains '2'").unwrap_err(),
            "\"contains\" needs a string column, but column \"temperature\" (at position 0) is Float64"
        );
    }

    #[test]
    fn booleans_compare_only_with_true_and_false() {
        assert!(compile("ok = true").is_ok());
        assert!(compile("ok = 1").unwrap_err().contains("is Boolean but 1"));
        assert!(compile("count = false").unwrap_err().contains("is Int8 but false"));
    }

    #[test]
    fn an_unparseable_timestamp_literal_is_refused() {
        let err = compile("ts_s > 'yesterday'").unwrap_err();
        assert!(
            err.starts_with("'yesterday' (at position 7) is not a valid Timestamp(s) for column \"ts_s\""),
            "{err}"
        );
        assert!(compile("ts_s > 3").unwrap_err().contains("is an integer literal"));
    }

    #[test]
    fn a_named_zone_timestamp_column_accepts_literals() {
        assert!(compile("ts >= '2020-04-16 11:33:23' and ts < '2020-04-17T00:00:00+02:00'").is_ok());
    }

    #[test]
    fn integer_literals_that_fit_keep_the_column_type() {
        assert_eq!(cast_of("count < 100"), None);
        assert_eq!(cast_of("count in (1, 2, 3)"), None);
    }

    #[test]
    fn integer_literals_out_of_the_column_range_widen_to_decimal() {
        assert_eq!(cast_of("count < 1000"), Some(DataType::Decimal128(38, 0)));
        assert_eq!(cast_of("big > -1"), Some(DataType::Decimal128(38, 0)));
    }

    #[test]
    fn a_float_literal_casts_an_integer_column_to_float64() {
        assert_eq!(cast_of("count in (1, 2.5)"), Some(DataType::Float64));
        assert_eq!(cast_of("price > 3"), Some(DataType::Float64));
        assert_eq!(cast_of("temperature > 3"), None);
    }

    #[test]
    fn columns_of_different_types_meet_at_a_common_type() {
        assert_eq!(common_type(&DataType::Int8, &DataType::Int32), Some(DataType::Int32));
        assert_eq!(common_type(&DataType::UInt32, &DataType::Int8), Some(DataType::Int64));
        assert_eq!(
            common_type(&DataType::UInt64, &DataType::Int8),
            Some(DataType::Decimal128(38, 0))
        );
        assert_eq!(
            common_type(&DataType::Float32, &DataType::Int8),
            Some(DataType::Float64)
        );
        assert_eq!(
            common_type(&DataType::Utf8, &DataType::Utf8View),
            Some(DataType::LargeUtf8)
        );
        assert_eq!(common_type(&DataType::Utf8, &DataType::Int8), None);
        assert!(compile("ts > ts_s and tag = device_id and count < big").is_ok());
        assert_eq!(
            compile("device_id = count").unwrap_err(),
            "type mismatch: cannot compare column \"device_id\" (Utf8) with column \"count\" (Int8) at position 0"
        );
    }

    #[test]
    fn dictionary_columns_are_typed_by_their_values() {
        assert_eq!(cast_of("tag = 'a'"), None);
        assert!(compile("tag starts_with 'a'").is_ok());
    }
}
