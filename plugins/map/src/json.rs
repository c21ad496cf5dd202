//! Parsing a string column of JSON documents into typed columns (`json = [{ from, fields }]`).
//!
//! Each row's document is parsed once with serde_json, whatever the number of fields read
//! from it, and each field's value is appended to that field's Arrow builder. JSON strings
//! bound for a type other than string are gathered into one string array per field and
//! converted after the batch by the same [`Cast`] a `mappings` entry would apply to a utf8
//! column (so `"21.5"` becomes a double, and a `format` parses timestamps and dates).
//!
//! What each type takes, besides JSON null (and an absent key), which give null:
//! - string: strings; numbers and booleans as their JSON text;
//! - bool: booleans, and strings as a utf8 column casts them;
//! - integers: numbers holding an integer within range (`2.0` is 2, `2.7` fails), strings;
//! - floats: numbers (float32: rounded, failing beyond its range), strings;
//! - timestamp, date: strings only (ISO 8601, or the field's `format`).
//!
//! Anything else fails the row, with a reason naming the column, the field and the value.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Number, Value};
use sluice_sdk::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    PrimitiveBuilder, StringArray, StringBuilder, new_null_array,
};
use sluice_sdk::arrow::compute::is_not_null;
use sluice_sdk::arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use sluice_sdk::arrow::compute::kernels::zip::zip;
use sluice_sdk::arrow::datatypes::{ArrowPrimitiveType, DataType};
use sluice_sdk::arrow::error::ArrowError;

use crate::cast::{Cast, Computed};
use crate::config::FieldType;

/// How many characters of a value a rejection reason quotes.
const QUOTE_CHARS: usize = 100;

/// One checked `json` entry: which input column to parse, and the fields to read.
#[derive(Debug, Clone)]
pub struct Json {
    /// The input column (a string column).
    pub input: usize,
    /// Its name, for reasons.
    column: String,
    fields: Vec<JsonField>,
}

/// One field to read out of every document.
#[derive(Debug, Clone)]
pub struct JsonField {
    /// The object keys leading to the value, outermost first.
    path: Vec<String>,
    /// The path as written, for reasons.
    path_text: String,
    to: FieldType,
    /// What the field takes, for reasons: `a double`, `a timestamp with format "%Y"`.
    expected: String,
    /// How a JSON string is converted: as a utf8 column is cast to `to`.
    strings: Cast,
}

/// The columns one `json` entry produced for a batch.
pub struct Parsed {
    /// One column per field, in field order, null where the row failed.
    pub arrays: Vec<ArrayRef>,
    /// The reason for each row that failed (null for the others); `None` when none did.
    pub reasons: Option<StringArray>,
}

impl JsonField {
    /// A field read at `path` (dotted, already checked to have no empty key) as `to`,
    /// whose type was written `type_name`; `strings` is the cast planned for JSON strings.
    pub fn new(path: &str, type_name: &str, to: FieldType, format: Option<&str>, strings: Cast) -> Self {
        let spelt = type_name.to_ascii_lowercase();
        let article = if spelt.starts_with(['a', 'e', 'i', 'o']) {
            "an"
        } else {
            "a"
        };
        let mut expected = format!("{article} {spelt}");
        if let Some(format) = format {
            expected.push_str(&format!(" with format {format:?}"));
        }
        JsonField {
            path: path.split('.').map(str::to_owned).collect(),
            path_text: path.to_owned(),
            to,
            expected,
            strings,
        }
    }
}

impl Json {
    /// Parse input column `input` (named `column`) for `fields`.
    pub fn new(input: usize, column: &str, fields: Vec<JsonField>) -> Self {
        Json {
            input,
            column: column.to_owned(),
            fields,
        }
    }

    /// Parse every document of `input` (a string column) and fill one column per field.
    pub fn apply(&self, input: &ArrayRef) -> Result<Parsed, ArrowError> {
        let rows = input.len();
        let utf8 = match input.data_type() {
            DataType::Utf8 => input.clone(),
            _ => cast_with_options(input, &DataType::Utf8, &CastOptions::default())?,
        };
        // Invariant: Utf8 arrays are StringArrays (i32 offsets).
        let texts = utf8.as_string::<i32>();
        let mut builders: Vec<Builder<'_>> = self.fields.iter().map(|f| Builder::new(f, rows)).collect();
        // Per failed row: (field index, what went wrong), in the order found.
        let mut failures: BTreeMap<usize, Vec<(usize, String)>> = BTreeMap::new();

        for (row, text) in texts.iter().enumerate() {
            let document = match text.map(object) {
                None => None,
                Some(Ok(document)) => Some(document),
                Some(Err(why)) => {
                    let reason = format!("column {:?} is not a JSON object: {why}", self.column);
                    failures.entry(row).or_default().push((0, reason));
                    None
                }
            };
            for (k, builder) in builders.iter_mut().enumerate() {
                let found = match &document {
                    None => Ok(None),
                    Some(document) => lookup(document, &builder.field.path),
                };
                let outcome = match found {
                    Ok(value) => builder.push(value),
                    Err(why) => {
                        builder.push_null();
                        Err(why)
                    }
                };
                if let Err(why) = outcome {
                    failures
                        .entry(row)
                        .or_default()
                        .push((k, self.field_reason(builder.field, &why)));
                }
            }
        }

        let mut arrays = Vec::with_capacity(builders.len());
        for (k, builder) in builders.into_iter().enumerate() {
            let field = builder.field;
            let (array, failed_strings) = builder.finish()?;
            arrays.push(array);
            for (row, text) in failed_strings {
                let why = format!("expected {}, found {}", field.expected, quote_str(&text));
                failures
                    .entry(row)
                    .or_default()
                    .push((k, self.field_reason(field, &why)));
            }
        }

        let reasons = (!failures.is_empty()).then(|| {
            let mut by_row = failures.into_iter().peekable();
            (0..rows)
                .map(|row| {
                    let (_, mut parts) = by_row.next_if(|(r, _)| *r == row)?;
                    parts.sort_by_key(|(k, _)| *k);
                    let parts: Vec<String> = parts.into_iter().map(|(_, why)| why).collect();
                    Some(parts.join("; "))
                })
                .collect::<StringArray>()
        });
        Ok(Parsed { arrays, reasons })
    }

    fn field_reason(&self, field: &JsonField, why: &str) -> String {
        format!("column {:?} field {:?}: {why}", self.column, field.path_text)
    }
}

/// `text` parsed as a JSON object, or why it is not one.
fn object(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!("found {}", quote(&other))),
        Err(e) => Err(e.to_string()),
    }
}

/// The value at `path` in `document`: `None` when a key on the way is absent or null, an
/// error when a value on the way is not an object.
fn lookup<'a>(document: &'a Map<String, Value>, path: &[String]) -> Result<Option<&'a Value>, String> {
    let mut current = document;
    for (depth, key) in path.iter().enumerate() {
        let Some(value) = current.get(key) else {
            return Ok(None);
        };
        if depth + 1 == path.len() {
            return Ok(Some(value));
        }
        match value {
            Value::Object(inner) => current = inner,
            Value::Null => return Ok(None),
            other => {
                return Err(format!(
                    "expected an object at {:?}, found {}",
                    path[..=depth].join("."),
                    quote(other)
                ));
            }
        }
    }
    Ok(None)
}

/// A JSON value as JSON text, at most [`QUOTE_CHARS`] characters and `…`.
fn quote(value: &Value) -> String {
    if let Value::String(s) = value {
        return quote_str(s);
    }
    let text = value.to_string();
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// A string as a JSON string, its first [`QUOTE_CHARS`] characters and `…` when longer.
fn quote_str(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        Some((end, _)) => format!("{}…", Value::from(&s[..end])),
        None => Value::from(s).to_string(),
    }
}

/// The integer a JSON number holds exactly, if it fits in an i64: `2` and `2.0` do, `2.7`
/// and `1e20` do not.
fn exact_i64(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None;
    }
    let f = n.as_f64()?;
    // -2^63 ≤ f < 2^63, both bounds exact in f64.
    let fits = f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f);
    fits.then_some(f as i64)
}

/// Append `value` if there is one; whether there was.
fn append<B: Append<T>, T>(builder: &mut B, value: Option<T>) -> bool {
    match value {
        Some(value) => {
            builder.append(value);
            true
        }
        None => false,
    }
}

/// A builder's `append_value`, over the builders [`Native`] holds.
trait Append<T> {
    fn append(&mut self, value: T);
}

impl<S: AsRef<str>> Append<S> for StringBuilder {
    fn append(&mut self, value: S) {
        self.append_value(value);
    }
}

impl Append<bool> for BooleanBuilder {
    fn append(&mut self, value: bool) {
        self.append_value(value);
    }
}

impl<T: ArrowPrimitiveType> Append<T::Native> for PrimitiveBuilder<T> {
    fn append(&mut self, value: T::Native) {
        self.append_value(value);
    }
}

/// The values a field takes from JSON's own types.
enum Native {
    Utf8(StringBuilder),
    Bool(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    /// Timestamps and dates: only strings convert.
    None,
}

/// One field's column being built.
struct Builder<'a> {
    field: &'a JsonField,
    rows: usize,
    native: Native,
    /// The JSON strings, converted after the batch; absent for string fields.
    strings: Option<StringBuilder>,
}

impl<'a> Builder<'a> {
    fn new(field: &'a JsonField, rows: usize) -> Self {
        let native = match field.to {
            FieldType::Utf8 => Native::Utf8(StringBuilder::with_capacity(rows, rows * 8)),
            FieldType::Bool => Native::Bool(BooleanBuilder::with_capacity(rows)),
            FieldType::Int32 => Native::Int32(Int32Builder::with_capacity(rows)),
            FieldType::Int64 => Native::Int64(Int64Builder::with_capacity(rows)),
            FieldType::Float32 => Native::Float32(Float32Builder::with_capacity(rows)),
            FieldType::Float64 => Native::Float64(Float64Builder::with_capacity(rows)),
            FieldType::Timestamp | FieldType::Date => Native::None,
        };
        let strings = (field.to != FieldType::Utf8).then(|| StringBuilder::with_capacity(rows, 0));
        Builder {
            field,
            rows,
            native,
            strings,
        }
    }

    fn push_null(&mut self) {
        self.push_native_null();
        if let Some(strings) = &mut self.strings {
            strings.append_null();
        }
    }

    fn push_native_null(&mut self) {
        match &mut self.native {
            Native::Utf8(b) => b.append_null(),
            Native::Bool(b) => b.append_null(),
            Native::Int32(b) => b.append_null(),
            Native::Int64(b) => b.append_null(),
            Native::Float32(b) => b.append_null(),
            Native::Float64(b) => b.append_null(),
            Native::None => {}
        }
    }

    /// Append one row's value (`None` when absent); on a value the field cannot take,
    /// append null and say why.
    fn push(&mut self, value: Option<&Value>) -> Result<(), String> {
        let value = match value {
            None | Some(Value::Null) => {
                self.push_null();
                return Ok(());
            }
            Some(value) => value,
        };
        if let (Some(strings), Value::String(s)) = (&mut self.strings, value) {
            strings.append_value(s);
            self.push_native_null();
            return Ok(());
        }
        if let Some(strings) = &mut self.strings {
            strings.append_null();
        }
        let taken = match (&mut self.native, value) {
            (Native::Utf8(b), Value::String(s)) => append(b, Some(s.as_str())),
            (Native::Utf8(b), Value::Number(n)) => append(b, Some(n.to_string())),
            (Native::Utf8(b), Value::Bool(v)) => append(b, Some(if *v { "true" } else { "false" })),
            (Native::Bool(b), Value::Bool(v)) => append(b, Some(*v)),
            (Native::Int32(b), Value::Number(n)) => append(b, exact_i64(n).and_then(|i| i32::try_from(i).ok())),
            (Native::Int64(b), Value::Number(n)) => append(b, exact_i64(n)),
            // Rounding to float32 is the conversion, but beyond its range a finite value
            // becomes infinite: an overflow.
            (Native::Float32(b), Value::Number(n)) => append(b, n.as_f64().map(|f| f as f32).filter(|f| f.is_finite())),
            (Native::Float64(b), Value::Number(n)) => append(b, n.as_f64()),
            _ => false,
        };
        if !taken {
            self.push_native_null();
            return Err(format!("expected {}, found {}", self.field.expected, quote(value)));
        }
        Ok(())
    }

    /// The finished column, and the rows (with their text) whose string did not convert.
    fn finish(self) -> Result<(ArrayRef, Vec<(usize, String)>), ArrowError> {
        let data_type = self.field.to.data_type();
        let native: ArrayRef = match self.native {
            Native::Utf8(mut b) => Arc::new(b.finish()),
            Native::Bool(mut b) => Arc::new(b.finish()),
            Native::Int32(mut b) => Arc::new(b.finish()),
            Native::Int64(mut b) => Arc::new(b.finish()),
            Native::Float32(mut b) => Arc::new(b.finish()),
            Native::Float64(mut b) => Arc::new(b.finish()),
            Native::None => new_null_array(&data_type, self.rows),
        };
        let Some(mut strings) = self.strings else {
            return Ok((native, Vec::new()));
        };
        let strings: ArrayRef = Arc::new(strings.finish());
        if strings.null_count() == strings.len() {
            return Ok((native, Vec::new()));
        }
        let Computed { array, failed } = self.field.strings.apply(&strings)?;
        let merged = zip(&is_not_null(&strings)?, &array, &native)?;
        let texts = strings.as_string::<i32>();
        let failed = failed
            .map(|mask| {
                mask.iter()
                    .enumerate()
                    .filter(|(_, f)| *f == Some(true))
                    .map(|(row, _)| (row, texts.value(row).to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ok((merged, failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> Number {
        serde_json::from_str(text).expect("a JSON number")
    }

    #[test]
    fn only_integral_numbers_within_range_are_integers() {
        assert_eq!(exact_i64(&number("-7")), Some(-7));
        assert_eq!(exact_i64(&number("2.0")), Some(2));
        assert_eq!(exact_i64(&number("1e3")), Some(1000));
        assert_eq!(exact_i64(&number("2.7")), None);
        assert_eq!(exact_i64(&number("9223372036854775807")), Some(i64::MAX));
        assert_eq!(exact_i64(&number("9223372036854775808")), None);
        assert_eq!(exact_i64(&number("-9223372036854775808.0")), Some(i64::MIN));
        assert_eq!(exact_i64(&number("9223372036854775808.0")), None);
        assert_eq!(exact_i64(&number("1e300")), None);
    }

    #[test]
    fn quotes_are_json_text_cut_at_a_hundred_characters() {
        assert_eq!(quote(&Value::from("a\"b")), r#""a\"b""#);
        assert_eq!(quote(&serde_json::json!({"a": [1, true]})), r#"{"a":[1,true]}"#);
        let long = "é".repeat(150);
        assert_eq!(quote_str(&long), format!("\"{}\"…", "é".repeat(100)));
        let array = Value::from(vec![1; 80]);
        let quoted = quote(&array);
        assert_eq!(quoted.chars().count(), 101);
        assert!(quoted.starts_with("[1,1,") && quoted.ends_with(",1…"), "{quoted}");
    }

    #[test]
    fn a_path_through_a_non_object_is_an_error_and_through_null_is_absent() {
        let doc = object(r#"{"meta":{"time":"x","gone":null},"flat":3}"#).expect("object");
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(lookup(&doc, &path("meta.time")), Ok(Some(&Value::from("x"))));
        assert_eq!(lookup(&doc, &path("meta.gone.deeper")), Ok(None));
        assert_eq!(lookup(&doc, &path("nope.deeper")), Ok(None));
        assert_eq!(
            lookup(&doc, &path("flat.x.y")),
            Err(r#"expected an object at "flat", found 3"#.to_owned())
        );
        assert_eq!(
            lookup(&doc, &path("meta.time.x")),
            Err(r#"expected an object at "meta.time", found "x""#.to_owned())
        );
    }
}
