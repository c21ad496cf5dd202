//! The column-type vocabulary shared by pipeline files, the host and the stock plugins, so a type
//! name means the same everywhere (`double`, `timestamp`, …).

use arrow::datatypes::{DataType, TimeUnit};

/// A column type as pipeline files and plugin configs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// UTF-8 string.
    Utf8,
    /// Boolean.
    Bool,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// Microseconds since the epoch, no zone attached, meaning UTC.
    Timestamp,
    /// Days since the epoch.
    Date,
}

impl FieldType {
    /// Every accepted spelling, for messages.
    pub const NAMES: &[&str] = &[
        "string",
        "utf8",
        "bool",
        "boolean",
        "int32",
        "int",
        "int64",
        "long",
        "bigint",
        "float32",
        "float",
        "float64",
        "double",
        "timestamp",
        "date",
    ];

    /// Parse a type name, ignoring ASCII case as the host does.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "string" | "utf8" => FieldType::Utf8,
            "bool" | "boolean" => FieldType::Bool,
            "int32" | "int" => FieldType::Int32,
            "int64" | "long" | "bigint" => FieldType::Int64,
            "float32" | "float" => FieldType::Float32,
            "float64" | "double" => FieldType::Float64,
            "timestamp" => FieldType::Timestamp,
            "date" => FieldType::Date,
            _ => return None,
        })
    }

    /// The canonical spelling, for messages.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Utf8 => "string",
            FieldType::Bool => "bool",
            FieldType::Int32 => "int32",
            FieldType::Int64 => "int64",
            FieldType::Float32 => "float32",
            FieldType::Float64 => "float64",
            FieldType::Timestamp => "timestamp",
            FieldType::Date => "date",
        }
    }

    /// The type of an Arrow column, if it is one of these (the inverse of [`Self::data_type`]).
    pub fn of(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Utf8 => FieldType::Utf8,
            DataType::Boolean => FieldType::Bool,
            DataType::Int32 => FieldType::Int32,
            DataType::Int64 => FieldType::Int64,
            DataType::Float32 => FieldType::Float32,
            DataType::Float64 => FieldType::Float64,
            DataType::Timestamp(TimeUnit::Microsecond, None) => FieldType::Timestamp,
            DataType::Date32 => FieldType::Date,
            _ => return None,
        })
    }

    /// The Arrow type of a column of this type.
    pub fn data_type(self) -> DataType {
        match self {
            FieldType::Utf8 => DataType::Utf8,
            FieldType::Bool => DataType::Boolean,
            FieldType::Int32 => DataType::Int32,
            FieldType::Int64 => DataType::Int64,
            FieldType::Float32 => DataType::Float32,
            FieldType::Float64 => DataType::Float64,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            FieldType::Date => DataType::Date32,
        }
    }
}
