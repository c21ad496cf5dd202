//! The map transform's `config` table as typed serde structs, and the column type names it
//! accepts (the same vocabulary the host uses for declared schemas).
//!
//! Only shapes are checked here; everything that needs the input schema (unknown columns,
//! impossible casts, expressions) is checked by [`crate::plan`].

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
pub use sluice_sdk::FieldType;
use sluice_sdk::arrow::datatypes::DataType;

/// `[transform.config]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Pass columns no mapping mentions through unchanged, after the mapped ones.
    #[serde(default)]
    pub keep_unmapped: bool,
    /// The mapped columns, in output order.
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Unmapped columns not to pass through (only with `keep_unmapped = true`).
    #[serde(default)]
    pub drop: Vec<String>,
    /// String columns holding JSON documents, parsed into typed columns (see [`crate::json`]).
    #[serde(default)]
    pub json: Vec<JsonSource>,
    /// Constant or derived columns appended at the end, in order.
    #[serde(default)]
    pub add: Vec<Added>,
}

/// One `mappings` entry: an input column, renamed and/or cast.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Input column.
    pub from: String,
    /// Output name; `from` when absent.
    #[serde(default)]
    pub to: Option<String>,
    /// Output type name; the input type when absent.
    #[serde(default, rename = "type")]
    pub type_name: Option<String>,
    /// chrono format for parsing a string column into a timestamp or date.
    #[serde(default)]
    pub format: Option<String>,
}

/// One `json` entry: a string column whose values are JSON objects, and the fields to read
/// out of each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSource {
    /// Input column (utf8).
    pub from: String,
    /// The columns to produce, in output order.
    pub fields: Vec<JsonField>,
}

/// One field of a `json` entry: an output column read from a (nested) key of the document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonField {
    /// Output column name.
    pub name: String,
    /// Dotted path of object keys (`meta.time`); `name` when absent.
    #[serde(default)]
    pub path: Option<String>,
    /// Output type name.
    #[serde(rename = "type")]
    pub type_name: String,
    /// chrono format for parsing a string value into a timestamp or date.
    #[serde(default)]
    pub format: Option<String>,
}

/// One `add` entry: exactly one of `value` and `expr`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Added {
    /// Output column name.
    pub name: String,
    /// A constant for every row.
    #[serde(default)]
    pub value: Option<Constant>,
    /// Arithmetic over numeric input columns (see [`crate::expr`]).
    #[serde(default)]
    pub expr: Option<String>,
}

/// A constant column value; its type is the type of the literal in the pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub enum Constant {
    /// utf8.
    Str(String),
    /// int64.
    Int(i64),
    /// float64.
    Float(f64),
    /// bool.
    Bool(bool),
}

impl Constant {
    /// The Arrow type of the column this constant fills.
    pub fn data_type(&self) -> DataType {
        match self {
            Constant::Str(_) => DataType::Utf8,
            Constant::Int(_) => DataType::Int64,
            Constant::Float(_) => DataType::Float64,
            Constant::Bool(_) => DataType::Boolean,
        }
    }
}

impl<'de> Deserialize<'de> for Constant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConstantVisitor;

        impl Visitor<'_> for ConstantVisitor {
            type Value = Constant;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, integer, float or boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Constant, E> {
                Ok(Constant::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Constant, E> {
                Ok(Constant::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Constant, E> {
                i64::try_from(v)
                    .map(Constant::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"an integer within int64 range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Constant, E> {
                Ok(Constant::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Constant, E> {
                Ok(Constant::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Constant, E> {
                Ok(Constant::Str(v))
            }
        }

        deserializer.deserialize_any(ConstantVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn every_listed_type_name_parses_and_case_is_ignored() {
        for name in FieldType::NAMES {
            assert!(FieldType::parse(name).is_some(), "{name}");
        }
        assert_eq!(FieldType::parse("BigInt"), Some(FieldType::Int64));
        assert_eq!(FieldType::parse("double"), Some(FieldType::Float64));
        assert_eq!(FieldType::parse("varchar"), None);
    }

    #[test]
    fn constants_take_the_type_of_their_literal() {
        let cfg = parse(
            r#"{"add":[{"name":"a","value":"iot"},{"name":"b","value":7},
                {"name":"c","value":1.5},{"name":"d","value":true}]}"#,
        )
        .unwrap();
        let values: Vec<_> = cfg.add.into_iter().map(|a| a.value.unwrap()).collect();
        assert_eq!(
            values,
            [
                Constant::Str("iot".into()),
                Constant::Int(7),
                Constant::Float(1.5),
                Constant::Bool(true)
            ]
        );
    }

    #[test]
    fn a_constant_that_is_not_a_scalar_says_what_is_expected() {
        let err = parse(r#"{"add":[{"name":"a","value":[1]}]}"#).unwrap_err();
        assert!(
            err.to_string().contains("expected a string, integer, float or boolean"),
            "{err}"
        );
    }

    #[test]
    fn an_integer_constant_beyond_int64_is_refused() {
        let err = parse(r#"{"add":[{"name":"a","value":18446744073709551615}]}"#).unwrap_err();
        assert!(err.to_string().contains("int64 range"), "{err}");
    }

    #[test]
    fn misspelt_keys_are_refused_at_every_level() {
        assert!(parse(r#"{"keep_unmaped":true}"#).is_err());
        assert!(parse(r#"{"mappings":[{"from":"a","too":"b"}]}"#).is_err());
        assert!(parse(r#"{"add":[{"name":"a","vaule":1}]}"#).is_err());
        assert!(parse(r#"{"json":[{"from":"m","field":[]}]}"#).is_err());
        assert!(parse(r#"{"json":[{"from":"m","fields":[{"name":"a","type":"int","pth":"b"}]}]}"#).is_err());
    }
}
