//! One JSON value into one column's type: exactly, or with `coerce = "lenient"` also from
//! numeric and boolean strings (the README's table). Nothing is rounded, truncated or made
//! infinite: a value that does not fit is an error in the user's words (`2.7 is not an
//! integer`), without the field name, which the caller adds.

use std::borrow::Cow;

use arrow::compute::kernels::cast_utils::Parser;
use arrow::datatypes::Date32Type;
use serde_json::value::RawValue;

use super::timestamp;
use crate::config::{Coerce, FieldType};
use crate::record::quoted;

fn is_number(kind: FieldType) -> bool {
    matches!(
        kind,
        FieldType::Int32 | FieldType::Int64 | FieldType::Float32 | FieldType::Float64
    )
}

/// One decoded value, checked against its column's type.
#[derive(Debug, Clone)]
pub(super) enum Cell<'a> {
    Null,
    Bool(bool),
    /// Int32 and Int64 (in range), timestamps (microseconds) and dates (days).
    Int(i64),
    /// Float32 (in range) and Float64.
    Float(f64),
    Str(Cow<'a, str>),
    /// A nested value's JSON text.
    Raw(&'a RawValue),
}

impl PartialEq for Cell<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Bool(a), Cell::Bool(b)) => a == b,
            (Cell::Int(a), Cell::Int(b)) => a == b,
            (Cell::Float(a), Cell::Float(b)) => a.to_bits() == b.to_bits(),
            (Cell::Str(a), Cell::Str(b)) => a == b,
            (Cell::Raw(a), Cell::Raw(b)) => a.get() == b.get(),
            _ => false,
        }
    }
}

/// A JSON integer (as serde_json gives it: `u64` when not negative) into `kind`; with
/// `numeric_times`, an integer in a timestamp column is microseconds.
pub(super) fn of_u64<'a>(kind: FieldType, coerce: Coerce, numeric_times: bool, v: u64) -> Result<Cell<'a>, String> {
    if numeric_times
        && kind == FieldType::Timestamp
        && let Ok(v) = i64::try_from(v)
    {
        return Ok(Cell::Int(v));
    }
    from_u64(kind, coerce, v)
}

/// A negative JSON integer into `kind` (see [`of_u64`]).
pub(super) fn of_i64<'a>(kind: FieldType, coerce: Coerce, numeric_times: bool, v: i64) -> Result<Cell<'a>, String> {
    if numeric_times && kind == FieldType::Timestamp {
        return Ok(Cell::Int(v));
    }
    from_i64(kind, coerce, v)
}

pub(super) fn from_bool<'a>(kind: FieldType, coerce: Coerce, b: bool) -> Result<Cell<'a>, String> {
    match kind {
        FieldType::Bool => Ok(Cell::Bool(b)),
        FieldType::Utf8 if coerce == Coerce::Lenient => Ok(Cell::Str(Cow::Borrowed(if b { "true" } else { "false" }))),
        _ => Err(format!("{b} is a boolean, not {}", kind.name())),
    }
}

pub(super) fn from_i64<'a>(kind: FieldType, coerce: Coerce, v: i64) -> Result<Cell<'a>, String> {
    match kind {
        FieldType::Int32 if i32::try_from(v).is_err() => Err(format!("{v} is out of range for int32")),
        FieldType::Int32 | FieldType::Int64 => Ok(Cell::Int(v)),
        FieldType::Float32 | FieldType::Float64 => Ok(Cell::Float(v as f64)),
        _ => not_a_number_column(kind, coerce, v.to_string()),
    }
}

pub(super) fn from_u64<'a>(kind: FieldType, coerce: Coerce, v: u64) -> Result<Cell<'a>, String> {
    match i64::try_from(v) {
        Ok(v) => from_i64(kind, coerce, v),
        Err(_) if matches!(kind, FieldType::Int32 | FieldType::Int64) => {
            Err(format!("{v} is out of range for {}", kind.name()))
        }
        Err(_) => from_f64(kind, coerce, v as f64),
    }
}

pub(super) fn from_f64<'a>(kind: FieldType, coerce: Coerce, v: f64) -> Result<Cell<'a>, String> {
    match kind {
        FieldType::Int32 | FieldType::Int64 => {
            if v.fract() != 0.0 {
                return Err(format!("{v} is not an integer"));
            }
            // Exactly representable bounds: -2^63 is, 2^63 is the first value beyond.
            let (low, high) = if kind == FieldType::Int32 {
                (i32::MIN as f64, i32::MAX as f64)
            } else {
                (i64::MIN as f64, 9_223_372_036_854_775_808.0)
            };
            if v < low || v > high || (kind == FieldType::Int64 && v == high) {
                return Err(format!("{v} is out of range for {}", kind.name()));
            }
            Ok(Cell::Int(v as i64))
        }
        FieldType::Float32 if !(v as f32).is_finite() => Err(format!("{v} is out of range for float32")),
        FieldType::Float32 | FieldType::Float64 => Ok(Cell::Float(v)),
        _ => not_a_number_column(kind, coerce, v.to_string()),
    }
}

/// A number given to a column that does not hold numbers.
fn not_a_number_column<'a>(kind: FieldType, coerce: Coerce, text: String) -> Result<Cell<'a>, String> {
    match kind {
        FieldType::Utf8 if coerce == Coerce::Lenient => Ok(Cell::Str(Cow::Owned(text))),
        FieldType::Timestamp | FieldType::Date => Err(format!(
            "{text} is a number, not a {}: write it as a string such as {}",
            kind.name(),
            if kind == FieldType::Date {
                "\"2026-01-05\""
            } else {
                "\"2026-01-05T10:00:00Z\""
            }
        )),
        _ => Err(format!("{text} is a number, not {}", kind.name())),
    }
}

pub(super) fn from_str<'a>(kind: FieldType, coerce: Coerce, s: Cow<'a, str>) -> Result<Cell<'a>, String> {
    match kind {
        FieldType::Utf8 => Ok(Cell::Str(s)),
        FieldType::Timestamp => timestamp::micros(&s).map(Cell::Int).ok_or_else(|| {
            format!(
                "{} is not a timestamp (expected e.g. \"2026-01-05T10:00:00Z\" or \"2026-01-05 10:00:00\")",
                quoted(&s)
            )
        }),
        FieldType::Date => Date32Type::parse(&s)
            .map(|d| Cell::Int(d.into()))
            .ok_or_else(|| format!("{} is not a date (expected e.g. \"2026-01-05\")", quoted(&s))),
        FieldType::Bool if coerce == Coerce::Lenient && s.eq_ignore_ascii_case("true") => Ok(Cell::Bool(true)),
        FieldType::Bool if coerce == Coerce::Lenient && s.eq_ignore_ascii_case("false") => Ok(Cell::Bool(false)),
        k if is_number(k) && coerce == Coerce::Lenient => parse_number(kind, &s),
        _ => Err(format!(
            "{} is a string, not {}{}",
            quoted(&s),
            kind.name(),
            if is_number(kind) && parse_number(kind, &s).is_ok() {
                " (coerce = \"lenient\" on the source parses numeric strings)"
            } else {
                ""
            }
        )),
    }
}

/// A numeric string, by the same rules as a JSON number.
fn parse_number<'a>(kind: FieldType, s: &str) -> Result<Cell<'a>, String> {
    let t = s.trim();
    if let Ok(v) = t.parse::<i64>() {
        return from_i64(kind, Coerce::Strict, v);
    }
    match t.parse::<f64>() {
        // Rust also reads "inf", "NaN" and overflows to infinity: none is a JSON number.
        Ok(v) if v.is_finite() && t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) => {
            from_f64(kind, Coerce::Strict, v)
        }
        Ok(v) if v.is_infinite() && t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) => {
            Err(format!("{} is out of range for {}", quoted(s), kind.name()))
        }
        _ => Err(format!("{} is not a number", quoted(s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Coerce = Coerce::Strict;
    const L: Coerce = Coerce::Lenient;

    #[test]
    fn integers_take_only_integral_values_in_range() {
        assert_eq!(from_f64(FieldType::Int32, S, 2.7), Err("2.7 is not an integer".into()));
        assert_eq!(from_f64(FieldType::Int32, S, 2.0), Ok(Cell::Int(2)));
        assert_eq!(
            from_i64(FieldType::Int32, S, 3_000_000_000),
            Err("3000000000 is out of range for int32".into())
        );
        assert_eq!(
            from_i64(FieldType::Int32, S, i32::MIN as i64),
            Ok(Cell::Int(i32::MIN as i64))
        );
        assert_eq!(
            from_u64(FieldType::Int64, S, u64::MAX),
            Err("18446744073709551615 is out of range for int64".into())
        );
        assert_eq!(
            from_f64(FieldType::Int64, S, 9.3e18),
            Err("9300000000000000000 is out of range for int64".into())
        );
        assert_eq!(
            from_f64(FieldType::Int64, S, -9_223_372_036_854_775_808.0),
            Ok(Cell::Int(i64::MIN))
        );
        assert_eq!(
            from_bool(FieldType::Int32, S, true),
            Err("true is a boolean, not int32".into())
        );
    }

    #[test]
    fn strings_are_numbers_only_when_lenient_and_never_infinite() {
        assert_eq!(
            from_str(FieldType::Int32, S, "3".into()),
            Err("\"3\" is a string, not int32 (coerce = \"lenient\" on the source parses numeric strings)".into())
        );
        assert_eq!(from_str(FieldType::Int32, L, " 3 ".into()), Ok(Cell::Int(3)));
        assert_eq!(
            from_str(FieldType::Int32, L, "2.5".into()),
            Err("2.5 is not an integer".into())
        );
        assert_eq!(from_str(FieldType::Float64, L, "2.5".into()), Ok(Cell::Float(2.5)));
        assert_eq!(
            from_str(FieldType::Float64, L, "inf".into()),
            Err("\"inf\" is not a number".into())
        );
        assert_eq!(
            from_str(FieldType::Float64, L, "NaN".into()),
            Err("\"NaN\" is not a number".into())
        );
        assert_eq!(
            from_str(FieldType::Float64, L, "1e400".into()),
            Err("\"1e400\" is out of range for float64".into())
        );
        assert_eq!(
            from_str(FieldType::Float64, S, "hot".into()),
            Err("\"hot\" is a string, not float64".into())
        );
        assert_eq!(from_str(FieldType::Bool, L, "TRUE".into()), Ok(Cell::Bool(true)));
        assert!(from_str(FieldType::Bool, S, "true".into()).is_err());
    }

    #[test]
    fn floats_never_overflow_and_strings_take_no_numbers_when_strict() {
        assert_eq!(
            from_f64(FieldType::Float32, S, 1e39),
            Err("1000000000000000000000000000000000000000 is out of range for float32".into())
        );
        assert_eq!(from_f64(FieldType::Float32, S, 1.5), Ok(Cell::Float(1.5)));
        assert_eq!(
            from_i64(FieldType::Utf8, S, 12),
            Err("12 is a number, not string".into())
        );
        assert_eq!(from_i64(FieldType::Utf8, L, 12), Ok(Cell::Str("12".into())));
        assert_eq!(from_bool(FieldType::Utf8, L, false), Ok(Cell::Str("false".into())));
    }

    #[test]
    fn times_are_strings() {
        assert_eq!(
            from_str(FieldType::Timestamp, S, "2026-01-05T10:00:00.5Z".into()),
            Ok(Cell::Int(1_767_607_200_500_000))
        );
        assert_eq!(
            from_str(FieldType::Timestamp, S, "2026-01-05 10:00:00".into()),
            Ok(Cell::Int(1_767_607_200_000_000))
        );
        assert!(
            from_str(FieldType::Timestamp, S, "yesterday".into())
                .is_err_and(|e| e.starts_with("\"yesterday\" is not a timestamp"))
        );
        assert!(from_i64(FieldType::Timestamp, L, 1_700_000_000).is_err_and(|e| e.contains("not a timestamp")));
        assert_eq!(from_str(FieldType::Date, S, "1970-01-03".into()), Ok(Cell::Int(2)));
    }

    #[test]
    fn long_values_are_quoted_short() {
        let long = "x".repeat(10_000);
        let e = from_str(FieldType::Int64, S, long.into()).expect_err("a string");
        assert!(e.len() < 100, "{e}");
        assert!(e.starts_with(&format!("\"{}\"…", "x".repeat(40))), "{e}");
    }
}
