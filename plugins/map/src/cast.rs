//! Casting one mapped column: which casts are allowed (checked with no data, in `describe`),
//! and running them on a batch while finding the rows whose value could not be converted.
//!
//! Casts go through Arrow's cast kernel in its *safe* mode, where a value that cannot be
//! converted becomes null; a row is a failure when its input was not null and its output is.
//! The only per-row loop is parsing strings with a custom chrono `format`, for which Arrow
//! has no kernel.

use std::sync::Arc;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{NaiveDate, NaiveTime};
use sluice_sdk::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, BooleanBufferBuilder, PrimitiveArray, StringArray,
};
use sluice_sdk::arrow::buffer::{BooleanBuffer, NullBuffer};
use sluice_sdk::arrow::compute::kernels::cast::{CastOptions, can_cast_types, cast_with_options};
use sluice_sdk::arrow::compute::{and, is_not_null, is_null};
use sluice_sdk::arrow::datatypes::{DataType, Date32Type, Float32Type, Float64Type, TimestampMicrosecondType};
use sluice_sdk::arrow::error::ArrowError;

use crate::config::FieldType;

mod fixed;

use fixed::FixedLayout;

/// How one mapped column is produced from its input column.
#[derive(Debug, Clone)]
pub enum Cast {
    /// Unchanged (a rename, or a `type` equal to the input type).
    Keep,
    /// Arrow's cast kernel to this type.
    Kernel(FieldType),
    /// Parse strings with a chrono format into a timestamp or a date.
    Parse(Parse),
}

/// A string → timestamp/date cast with a chrono format.
#[derive(Debug, Clone)]
pub struct Parse {
    /// `Timestamp` or `Date`.
    to: FieldType,
    /// The format as written, for messages.
    format: String,
    /// The format, parsed once.
    items: Vec<Item<'static>>,
    /// The format has no time of day: a timestamp is midnight of the parsed date.
    date_only: bool,
    /// The position-based fast path, when the format allows it.
    fixed: Option<FixedLayout>,
}

/// Which key of a mapping a refused cast is blamed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CastError {
    /// The mapping's `type`.
    Type(String),
    /// The mapping's `format`.
    Format(String),
}

/// One computed output column of a batch (by a cast here, or by [`crate::expr`]).
pub struct Computed {
    /// The output column, null where the computation failed.
    pub array: ArrayRef,
    /// Rows whose non-null input could not be converted (no nulls in the mask); `None`
    /// when there are none.
    pub failed: Option<BooleanArray>,
}

impl Cast {
    /// Decide how to cast a column of type `from` to `to` (the input type when `None`),
    /// optionally parsing with `format`.
    pub fn plan(from: &DataType, to: Option<FieldType>, format: Option<&str>) -> Result<Cast, CastError> {
        if let Some(format) = format {
            return Parse::plan(from, to, format).map(Cast::Parse);
        }
        let Some(to) = to else {
            return Ok(Cast::Keep);
        };
        let target = to.data_type();
        if *from == target {
            return Ok(Cast::Keep);
        }
        if let Some(why) = refused(from, to) {
            return Err(CastError::Type(format!("cannot cast {from} to {}: {why}", to.name())));
        }
        if !can_cast_types(from, &target) {
            return Err(CastError::Type(format!("cannot cast {from} to {}", to.name())));
        }
        Ok(Cast::Kernel(to))
    }

    /// The type of the output column for an input column of type `from`.
    pub fn output_type(&self, from: &DataType) -> DataType {
        match self {
            Cast::Keep => from.clone(),
            Cast::Kernel(to) => to.data_type(),
            Cast::Parse(parse) => parse.to.data_type(),
        }
    }

    /// What the cast was trying to do, for a rejection reason: `to int32`.
    pub fn target_description(&self) -> String {
        match self {
            Cast::Keep => "unchanged".to_owned(),
            Cast::Kernel(to) => format!("to {}", to.name()),
            Cast::Parse(parse) => format!("to {} with format {:?}", parse.to.name(), parse.format),
        }
    }

    /// Cast `input`, finding the rows that failed.
    pub fn apply(&self, input: &ArrayRef) -> Result<Computed, ArrowError> {
        let array = match self {
            Cast::Keep => {
                return Ok(Computed {
                    array: input.clone(),
                    failed: None,
                });
            }
            Cast::Kernel(to) => cast_with_options(input, &to.data_type(), &SAFE)?,
            Cast::Parse(parse) => parse.apply(input)?,
        };
        let mut failed = None;
        // A cast maps null to null, so equal counts mean no value was lost.
        if array.null_count() > input.null_count() {
            failed = Some(and(&is_not_null(input)?, &is_null(&array)?)?);
        }
        if let Some(overflow) = float32_overflow(input, &array) {
            failed = Some(match failed {
                Some(f) => sluice_sdk::arrow::compute::or(&f, &overflow)?,
                None => overflow,
            });
        }
        Ok(Computed { array, failed })
    }
}

const SAFE: CastOptions<'static> = CastOptions {
    safe: true,
    format_options: sluice_sdk::arrow::util::display::FormatOptions::new(),
};

/// Casts Arrow could do but that make no sense for data, with the reason.
fn refused(from: &DataType, to: FieldType) -> Option<&'static str> {
    let temporal_to = matches!(to, FieldType::Timestamp | FieldType::Date);
    let temporal_from = matches!(from, DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _));
    match from {
        DataType::Boolean if temporal_to => Some("a boolean is not a point in time"),
        f if f.is_floating() && temporal_to => Some("a float is not a point in time; cast to an integer first"),
        _ if temporal_from && matches!(to, FieldType::Bool) => Some("a point in time is not a boolean"),
        _ if temporal_from && matches!(to, FieldType::Float32 | FieldType::Float64) => {
            Some("a point in time is not a float; cast to int64 instead")
        }
        _ => None,
    }
}

/// A float64 → float32 cast turns finite values beyond float32's range into infinities
/// rather than nulls: those rows are overflows too.
fn float32_overflow(input: &ArrayRef, output: &ArrayRef) -> Option<BooleanArray> {
    let input = input.as_primitive_opt::<Float64Type>()?;
    let output = output.as_primitive_opt::<Float32Type>()?;
    // Mostly there is no infinity at all, which one pass over the values finds out.
    if !output.values().iter().any(|v| v.is_infinite()) {
        return None;
    }
    let overflow = BooleanBuffer::collect_bool(input.len(), |i| {
        input.is_valid(i) && input.value(i).is_finite() && output.value(i).is_infinite()
    });
    (overflow.count_set_bits() > 0).then(|| BooleanArray::from(overflow))
}

impl Parse {
    fn plan(from: &DataType, to: Option<FieldType>, format: &str) -> Result<Parse, CastError> {
        let to = match to {
            Some(to @ (FieldType::Timestamp | FieldType::Date)) => to,
            Some(other) => {
                return Err(CastError::Format(format!(
                    "`format` parses strings into timestamps or dates, but the target type is {}",
                    other.name()
                )));
            }
            None => {
                return Err(CastError::Format(
                    "`format` needs `type = \"timestamp\"` or `type = \"date\"`".to_owned(),
                ));
            }
        };
        if !matches!(from, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
            return Err(CastError::Format(format!(
                "`format` parses strings, but the column is of type {from}"
            )));
        }
        let items = StrftimeItems::new(format)
            .parse_to_owned()
            .map_err(|e| CastError::Format(format!("invalid format {format:?}: {e}")))?;
        let date_only = !items.iter().any(is_time_item);
        let fixed = FixedLayout::of(&items);
        Ok(Parse {
            to,
            format: format.to_owned(),
            items,
            date_only,
            fixed,
        })
    }

    fn apply(&self, input: &ArrayRef) -> Result<ArrayRef, ArrowError> {
        let utf8 = cast_with_options(input, &DataType::Utf8, &SAFE)?;
        // Invariant: just cast to Utf8, whose array type is StringArray (i32 offsets).
        let strings = utf8.as_string::<i32>();
        Ok(match self.to {
            FieldType::Date => Arc::new(parse_each::<Date32Type>(strings, |s| self.date(s))),
            _ => Arc::new(parse_each::<TimestampMicrosecondType>(strings, |s| self.micros(s))),
        })
    }

    fn parsed(&self, s: &str) -> Option<Parsed> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, s, self.items.iter()).ok()?;
        Some(parsed)
    }

    /// Days since the epoch.
    fn date(&self, s: &str) -> Option<i32> {
        let date = self.parsed(s)?.to_naive_date().ok()?;
        i32::try_from((date - NaiveDate::default()).num_days()).ok()
    }

    /// Microseconds since the epoch, UTC. A parsed offset is applied; without one the
    /// value already means UTC.
    fn micros(&self, s: &str) -> Option<i64> {
        if let Some(micros) = self.fixed.as_ref().and_then(|f| f.micros(s)) {
            return Some(micros);
        }
        let parsed = self.parsed(s)?;
        let datetime = if self.date_only {
            parsed.to_naive_date().ok()?.and_time(NaiveTime::MIN)
        } else if parsed.offset().is_some() {
            parsed.to_datetime().ok()?.naive_utc()
        } else {
            parsed.to_naive_datetime_with_offset(0).ok()?
        };
        Some(datetime.and_utc().timestamp_micros())
    }
}

/// `parse` over a column's values (null where the value is null or does not parse), a value
/// equal to the one before taking that one's result without parsing it again: readings of
/// many devices at one instant carry the same time text, one after another. Written as one
/// loop into a values vector and a validity bitmap: an iterator of options collected into
/// an array was most of the map stage's time in WebAssembly.
fn parse_each<T: ArrowPrimitiveType>(
    strings: &StringArray,
    parse: impl Fn(&str) -> Option<T::Native>,
) -> PrimitiveArray<T> {
    let rows = strings.len();
    let mut values = Vec::with_capacity(rows);
    // Made at the first null: until then every row is valid.
    let mut valid: Option<BooleanBufferBuilder> = None;
    let mut last: Option<(&str, Option<T::Native>)> = None;
    for row in 0..rows {
        let value = if strings.is_null(row) {
            None
        } else {
            let s = strings.value(row);
            match last {
                Some((text, value)) if same_text(text.as_bytes(), s.as_bytes()) => value,
                _ => {
                    let value = parse(s);
                    last = Some((s, value));
                    value
                }
            }
        };
        match (value, &mut valid) {
            (Some(_), None) => {}
            (value, Some(valid)) => valid.append(value.is_some()),
            (None, None) => {
                let mut builder = BooleanBufferBuilder::new(rows);
                builder.append_n(row, true);
                builder.append(false);
                valid = Some(builder);
            }
        }
        values.push(value.unwrap_or_default());
    }
    let nulls = valid.map(|mut v| NullBuffer::new(v.finish()));
    PrimitiveArray::new(values.into(), nulls)
}

/// `a == b`, eight bytes at a time. The slice comparison is a call to the C library's
/// `memcmp`, which in WebAssembly compares a byte at a time: for a timestamp's 19 bytes per
/// row it was an eighth of the map stage's time.
#[inline]
fn same_text(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if len < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let mut at = 0;
    while at + 8 < len {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the words before when the length is not a multiple.
    word(a, len - 8) == word(b, len - 8)
}

fn is_time_item(item: &Item<'_>) -> bool {
    use chrono::format::{Fixed, Numeric};
    matches!(
        item,
        Item::Numeric(
            Numeric::Hour
                | Numeric::Hour12
                | Numeric::Minute
                | Numeric::Second
                | Numeric::Nanosecond
                | Numeric::Timestamp,
            _
        ) | Item::Fixed(Fixed::RFC2822 | Fixed::RFC3339)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::arrow::array::{Float64Array, Int32Array, Int64Array, StringArray};
    use sluice_sdk::arrow::datatypes::TimeUnit;

    fn run(cast: &Cast, input: ArrayRef) -> (ArrayRef, Vec<bool>) {
        let out = cast.apply(&input).unwrap();
        let failed = match out.failed {
            Some(f) => f.iter().map(|b| b.unwrap()).collect(),
            None => vec![false; input.len()],
        };
        (out.array, failed)
    }

    fn timestamp_type() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    }

    #[test]
    fn each_value_parses_to_what_it_alone_would_whatever_comes_before() {
        let texts = [
            Some("7"),
            Some("7"),
            None,
            Some("x"),
            Some("x"),
            Some("8"),
            None,
            Some("8"),
            Some("9"),
        ];
        let parse = |s: &str| s.parse::<i32>().ok();
        let parsed = parse_each::<Date32Type>(&StringArray::from(texts.to_vec()), parse);
        let expected: Vec<Option<i32>> = texts.iter().map(|t| t.and_then(parse)).collect();
        assert_eq!(parsed.iter().collect::<Vec<_>>(), expected);
        let all_valid = parse_each::<Date32Type>(&StringArray::from(vec!["1", "1", "2"]), parse);
        assert_eq!(all_valid.nulls(), None, "no null buffer when every row parses");
        let null_first = parse_each::<Date32Type>(&StringArray::from(vec![None, Some("1")]), parse);
        assert_eq!(null_first.iter().collect::<Vec<_>>(), [None, Some(1)]);
    }

    #[test]
    fn texts_are_the_same_only_when_every_byte_is() {
        for len in 0..40 {
            let a: Vec<u8> = (0..len as u8).map(|i| b'0' + i % 10).collect();
            assert!(same_text(&a, &a.clone()), "{len} bytes");
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x40;
                assert!(!same_text(&a, &b), "{len} bytes, differing at {at}");
            }
            let mut longer = a.clone();
            longer.push(b'x');
            assert!(!same_text(&a, &longer) && !same_text(&longer, &a), "{len} bytes");
        }
    }

    #[test]
    fn a_type_equal_to_the_input_type_is_no_cast() {
        let cast = Cast::plan(&DataType::Int32, Some(FieldType::Int32), None).unwrap();
        assert!(matches!(cast, Cast::Keep));
    }

    #[test]
    fn strings_that_are_not_integers_fail_and_nulls_do_not() {
        let cast = Cast::plan(&DataType::Utf8, Some(FieldType::Int32), None).unwrap();
        let input: ArrayRef = Arc::new(StringArray::from(vec![Some("12"), Some("abc"), None]));
        let (array, failed) = run(&cast, input);
        let array = array.as_primitive::<sluice_sdk::arrow::datatypes::Int32Type>();
        assert_eq!(array.iter().collect::<Vec<_>>(), [Some(12), None, None]);
        assert_eq!(failed, [false, true, false]);
    }

    #[test]
    fn an_int64_beyond_int32_range_is_an_overflow_failure() {
        let cast = Cast::plan(&DataType::Int64, Some(FieldType::Int32), None).unwrap();
        let input: ArrayRef = Arc::new(Int64Array::from(vec![7, 1 << 40]));
        let (array, failed) = run(&cast, input);
        assert_eq!(array.as_ref(), &Int32Array::from(vec![Some(7), None]) as &dyn Array);
        assert_eq!(failed, [false, true]);
    }

    #[test]
    fn a_double_beyond_float32_range_is_an_overflow_failure() {
        let cast = Cast::plan(&DataType::Float64, Some(FieldType::Float32), None).unwrap();
        let input: ArrayRef = Arc::new(Float64Array::from(vec![1.5, 1e300, f64::INFINITY]));
        let (array, failed) = run(&cast, input);
        assert_eq!(
            array.as_primitive::<Float32Type>().value(0),
            1.5,
            "in-range values are converted"
        );
        assert_eq!(failed, [false, true, false]);
    }

    #[test]
    fn a_format_parses_timestamps_and_applies_a_parsed_offset() {
        let cast = Cast::plan(&DataType::Utf8, Some(FieldType::Timestamp), Some("%d/%m/%Y %H:%M %z")).unwrap();
        let input: ArrayRef = Arc::new(StringArray::from(vec!["02/01/2024 10:30 +0200", "2024-01-02 10:30"]));
        let (array, failed) = run(&cast, input);
        let array = array.as_primitive::<sluice_sdk::arrow::datatypes::TimestampMicrosecondType>();
        // 2024-01-02T08:30:00Z
        assert_eq!(array.value(0), 1_704_184_200_000_000);
        assert_eq!(failed, [false, true]);
    }

    #[test]
    fn repeated_values_give_what_each_gives_alone() {
        let formats = ["%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M %z"];
        let values = [
            Some("2020-04-16 10:40:00"),
            Some("2020-04-16 10:40:00"),
            None,
            Some("2020-04-16 10:40:00"),
            Some("2020-04-16 10:40:01"),
            Some("nope"),
            Some("nope"),
            Some("2020-04-16 10:40:01"),
            Some("02/01/2024 10:30 +0200"),
            Some("02/01/2024 10:30 +0200"),
            None,
            None,
        ];
        for format in formats {
            for to in [FieldType::Timestamp, FieldType::Date] {
                let cast = Cast::plan(&DataType::Utf8, Some(to), Some(format)).unwrap();
                let (together, failed) = run(&cast, Arc::new(StringArray::from(values.to_vec())));
                for (i, value) in values.iter().enumerate() {
                    let (alone, alone_failed) = run(&cast, Arc::new(StringArray::from(vec![*value])));
                    assert_eq!(together.slice(i, 1).to_data(), alone.to_data(), "{format} {value:?}");
                    assert_eq!(failed[i], alone_failed[0], "{format} {value:?}");
                }
            }
        }
    }

    #[test]
    fn a_date_only_format_gives_midnight_timestamps_and_dates() {
        let to_ts = Cast::plan(&DataType::Utf8, Some(FieldType::Timestamp), Some("%Y%m%d")).unwrap();
        let to_date = Cast::plan(&DataType::Utf8, Some(FieldType::Date), Some("%Y%m%d")).unwrap();
        let input: ArrayRef = Arc::new(StringArray::from(vec!["19700102"]));
        let (ts, _) = run(&to_ts, input.clone());
        let (date, _) = run(&to_date, input);
        assert_eq!(ts.data_type(), &timestamp_type());
        assert_eq!(
            ts.as_primitive::<sluice_sdk::arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
            86_400_000_000
        );
        assert_eq!(
            date.as_primitive::<sluice_sdk::arrow::datatypes::Date32Type>().value(0),
            1
        );
    }

    #[test]
    fn booleans_and_floats_are_refused_as_points_in_time() {
        let err = Cast::plan(&DataType::Boolean, Some(FieldType::Timestamp), None).unwrap_err();
        assert!(matches!(&err, CastError::Type(m) if m.contains("boolean is not a point in time")));
        let err = Cast::plan(&DataType::Float64, Some(FieldType::Date), None).unwrap_err();
        assert!(matches!(&err, CastError::Type(m) if m.contains("float is not a point in time")));
    }

    #[test]
    fn a_format_is_refused_for_non_strings_non_temporal_targets_and_bad_specifiers() {
        let err = Cast::plan(&DataType::Int64, Some(FieldType::Timestamp), Some("%s")).unwrap_err();
        assert!(matches!(&err, CastError::Format(m) if m.contains("column is of type Int64")));
        let err = Cast::plan(&DataType::Utf8, Some(FieldType::Int32), Some("%Y")).unwrap_err();
        assert!(matches!(&err, CastError::Format(m) if m.contains("target type is int32")));
        let err = Cast::plan(&DataType::Utf8, None, Some("%Y")).unwrap_err();
        assert!(matches!(&err, CastError::Format(m) if m.contains("needs `type")));
        let err = Cast::plan(&DataType::Utf8, Some(FieldType::Date), Some("%Y-%Q")).unwrap_err();
        assert!(matches!(&err, CastError::Format(m) if m.contains("invalid format")));
    }
}
