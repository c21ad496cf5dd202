//! Single values taken out of Arrow columns and put back: what keys and aggregates hold
//! between batches.
//!
//! Every supported column type has a [`Kind`], the physical shape its values take once the
//! column is cast to a normalized type (all signed integers, dates and timestamps to int64,
//! unsigned integers to uint64, floats to float64, strings to utf8, binaries to binary).
//! Values are read from the normalized column and written back by casting the normalized
//! column to the original type, which is exact for every type [`Kind::of`] accepts.

use std::cmp::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_sdk::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray, UInt64Array,
};
use sluice_sdk::arrow::compute::cast;
use sluice_sdk::arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use sluice_sdk::arrow::error::ArrowError;

/// The physical shape of a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// boolean.
    Bool,
    /// Signed integers, dates and timestamps, as i64.
    Int,
    /// Unsigned integers, as u64.
    UInt,
    /// float32 and float64, as f64.
    Float,
    /// utf8, large utf8 and utf8 view.
    Str,
    /// binary, large binary and binary view.
    Bytes,
}

impl Kind {
    /// The kind of a column type, or `None` for a type this transform cannot hold
    /// (nested, decimal, dictionary, float16, intervals, …).
    pub fn of(data_type: &DataType) -> Option<Kind> {
        use DataType::*;
        Some(match data_type {
            Boolean => Kind::Bool,
            Int8 | Int16 | Int32 | Int64 | Date32 | Date64 | Timestamp(_, _) => Kind::Int,
            UInt8 | UInt16 | UInt32 | UInt64 => Kind::UInt,
            Float32 | Float64 => Kind::Float,
            Utf8 | LargeUtf8 | Utf8View => Kind::Str,
            Binary | LargeBinary | BinaryView => Kind::Bytes,
            _ => return None,
        })
    }

    fn normalized(self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int => DataType::Int64,
            Kind::UInt => DataType::UInt64,
            Kind::Float => DataType::Float64,
            Kind::Str => DataType::Utf8,
            Kind::Bytes => DataType::Binary,
        }
    }
}

/// An owned value of some [`Kind`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// [`Kind::Bool`].
    Bool(bool),
    /// [`Kind::Int`].
    Int(i64),
    /// [`Kind::UInt`].
    UInt(u64),
    /// [`Kind::Float`], kept bit for bit in snapshots (JSON has no NaN and may round).
    Float(#[serde(with = "float_bits")] f64),
    /// [`Kind::Str`].
    Str(String),
    /// [`Kind::Bytes`].
    Bytes(Vec<u8>),
}

/// A value borrowed from a normalized column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
}

impl ValueRef<'_> {
    /// An owned copy.
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Bool(v) => Value::Bool(v),
            ValueRef::Int(v) => Value::Int(v),
            ValueRef::UInt(v) => Value::UInt(v),
            ValueRef::Float(v) => Value::Float(v),
            ValueRef::Str(v) => Value::Str(v.to_owned()),
            ValueRef::Bytes(v) => Value::Bytes(v.to_owned()),
        }
    }

    /// Order of two values of the same kind. Floats use IEEE total order (NaN above every
    /// number, −0 below +0); values of different kinds never meet and compare equal.
    pub fn compare(self, other: ValueRef<'_>) -> Ordering {
        match (self, other) {
            (ValueRef::Bool(a), ValueRef::Bool(b)) => a.cmp(&b),
            (ValueRef::Int(a), ValueRef::Int(b)) => a.cmp(&b),
            (ValueRef::UInt(a), ValueRef::UInt(b)) => a.cmp(&b),
            (ValueRef::Float(a), ValueRef::Float(b)) => a.total_cmp(&b),
            (ValueRef::Str(a), ValueRef::Str(b)) => a.cmp(b),
            (ValueRef::Bytes(a), ValueRef::Bytes(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

impl Value {
    /// A borrowed view.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Bool(v) => ValueRef::Bool(*v),
            Value::Int(v) => ValueRef::Int(*v),
            Value::UInt(v) => ValueRef::UInt(*v),
            Value::Float(v) => ValueRef::Float(*v),
            Value::Str(v) => ValueRef::Str(v),
            Value::Bytes(v) => ValueRef::Bytes(v),
        }
    }

    /// Overwrite with `value`, reusing this value's buffer when both are strings or bytes
    /// (a running `last` over a string column then allocates once, not once per row).
    pub fn set(&mut self, value: ValueRef<'_>) {
        match (self, value) {
            (Value::Str(s), ValueRef::Str(v)) => {
                s.clear();
                s.push_str(v);
            }
            (Value::Bytes(b), ValueRef::Bytes(v)) => {
                b.clear();
                b.extend_from_slice(v);
            }
            (this, value) => *this = value.to_owned(),
        }
    }

    /// Whether this value has shape `kind` (checked on restore).
    pub fn is(&self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Value::Bool(_), Kind::Bool)
                | (Value::Int(_), Kind::Int)
                | (Value::UInt(_), Kind::UInt)
                | (Value::Float(_), Kind::Float)
                | (Value::Str(_), Kind::Str)
                | (Value::Bytes(_), Kind::Bytes)
        )
    }
}

/// A column cast to its normalized type, for reading values row by row.
#[derive(Debug, Clone)]
pub enum Column {
    Bool(BooleanArray),
    Int(Int64Array),
    UInt(UInt64Array),
    Float(Float64Array),
    Str(StringArray),
    Bytes(BinaryArray),
}

impl Column {
    /// Normalize `array`, whose type has kind `kind`.
    pub fn new(array: &ArrayRef, kind: Kind) -> Result<Column, ArrowError> {
        let array = cast(array, &kind.normalized())?;
        Ok(match kind {
            Kind::Bool => Column::Bool(array.as_boolean().clone()),
            Kind::Int => Column::Int(array.as_primitive::<Int64Type>().clone()),
            Kind::UInt => Column::UInt(array.as_primitive::<UInt64Type>().clone()),
            Kind::Float => Column::Float(array.as_primitive::<Float64Type>().clone()),
            Kind::Str => Column::Str(array.as_string::<i32>().clone()),
            Kind::Bytes => Column::Bytes(array.as_binary::<i32>().clone()),
        })
    }

    /// Whether `row` holds a value.
    pub fn is_valid(&self, row: usize) -> bool {
        match self {
            Column::Bool(a) => a.is_valid(row),
            Column::Int(a) => a.is_valid(row),
            Column::UInt(a) => a.is_valid(row),
            Column::Float(a) => a.is_valid(row),
            Column::Str(a) => a.is_valid(row),
            Column::Bytes(a) => a.is_valid(row),
        }
    }

    /// The value at `row`, `None` when null.
    pub fn get(&self, row: usize) -> Option<ValueRef<'_>> {
        macro_rules! read {
            ($array:expr, $variant:ident) => {
                $array
                    .is_valid(row)
                    .then(|| ValueRef::$variant($array.value(row)))
            };
        }
        match self {
            Column::Bool(a) => read!(a, Bool),
            Column::Int(a) => read!(a, Int),
            Column::UInt(a) => read!(a, UInt),
            Column::Float(a) => read!(a, Float),
            Column::Str(a) => read!(a, Str),
            Column::Bytes(a) => read!(a, Bytes),
        }
    }
}

/// A column of type `data_type` (of kind `kind`) holding `values`; a value of another kind
/// is written as null.
pub fn build<'a>(
    kind: Kind,
    values: impl IntoIterator<Item = Option<&'a Value>>,
    data_type: &DataType,
) -> Result<ArrayRef, ArrowError> {
    let values = values.into_iter();
    let normalized: ArrayRef = match kind {
        Kind::Bool => Arc::new(
            values
                .map(|v| match v {
                    Some(Value::Bool(b)) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        Kind::Int => Arc::new(
            values
                .map(|v| match v {
                    Some(Value::Int(n)) => Some(*n),
                    _ => None,
                })
                .collect::<Int64Array>(),
        ),
        Kind::UInt => Arc::new(
            values
                .map(|v| match v {
                    Some(Value::UInt(n)) => Some(*n),
                    _ => None,
                })
                .collect::<UInt64Array>(),
        ),
        Kind::Float => Arc::new(
            values
                .map(|v| match v {
                    Some(Value::Float(f)) => Some(*f),
                    _ => None,
                })
                .collect::<Float64Array>(),
        ),
        Kind::Str => Arc::new(
            values
                .map(|v| match v {
                    Some(Value::Str(s)) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        Kind::Bytes => Arc::new(
            values
                .map(|v| match v {
                    Some(Value::Bytes(b)) => Some(b.as_slice()),
                    _ => None,
                })
                .collect::<BinaryArray>(),
        ),
    };
    if normalized.data_type() == data_type {
        Ok(normalized)
    } else {
        cast(&normalized, data_type)
    }
}

/// Serde for f64 as its IEEE bits, so NaN, infinities and every last bit survive JSON.
pub mod float_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        u64::deserialize(deserializer).map(f64::from_bits)
    }
}

/// [`float_bits`] for an optional f64.
pub mod opt_float_bits {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        value.map(f64::to_bits).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
        Option::<u64>::deserialize(deserializer).map(|bits| bits.map(f64::from_bits))
    }
}

#[cfg(test)]
mod tests {
    use sluice_sdk::arrow::array::{
        BinaryViewArray, Date32Array, Date64Array, Float32Array, Int8Array, Int16Array, Int32Array, LargeBinaryArray,
        LargeStringArray, StringViewArray, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
        UInt8Array, UInt16Array, UInt32Array,
    };

    use super::*;

    /// Every supported type: read through its normalized column and built back, unchanged.
    #[test]
    fn every_supported_type_round_trips_exactly() {
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            Arc::new(Int8Array::from(vec![Some(i8::MIN), None, Some(i8::MAX)])),
            Arc::new(Int16Array::from(vec![Some(i16::MIN), None, Some(7)])),
            Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(i32::MAX)])),
            Arc::new(Int64Array::from(vec![Some(i64::MIN), None, Some(i64::MAX)])),
            Arc::new(UInt8Array::from(vec![Some(0), None, Some(u8::MAX)])),
            Arc::new(UInt16Array::from(vec![Some(0), None, Some(u16::MAX)])),
            Arc::new(UInt32Array::from(vec![Some(0), None, Some(u32::MAX)])),
            Arc::new(UInt64Array::from(vec![Some(0), None, Some(u64::MAX)])),
            Arc::new(Float32Array::from(vec![Some(f32::MIN_POSITIVE), None, Some(-0.1)])),
            Arc::new(Float64Array::from(vec![Some(f64::NAN), None, Some(-0.0)])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("é\0")])),
            Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("")])),
            Arc::new(StringViewArray::from(vec![
                Some("a long string beyond twelve bytes"),
                None,
                Some("x"),
            ])),
            Arc::new(BinaryArray::from(vec![Some(&b"\x00\xff"[..]), None, Some(&b""[..])])),
            Arc::new(LargeBinaryArray::from(vec![Some(&b"\x01"[..]), None, Some(&b"z"[..])])),
            Arc::new(BinaryViewArray::from(vec![Some(&b"\x01"[..]), None, Some(&b"z"[..])])),
            Arc::new(Date32Array::from(vec![Some(-1), None, Some(19_000)])),
            Arc::new(Date64Array::from(vec![Some(-86_400_000), None, Some(0)])),
            Arc::new(TimestampSecondArray::from(vec![Some(-1), None, Some(1)]).with_timezone("+08:00")),
            Arc::new(TimestampMillisecondArray::from(vec![Some(-1), None, Some(1)])),
            Arc::new(TimestampNanosecondArray::from(vec![Some(-1), None, Some(1)]).with_timezone("UTC")),
        ];
        for array in arrays {
            let data_type = array.data_type().clone();
            let kind = Kind::of(&data_type).unwrap_or_else(|| panic!("{data_type} unsupported"));
            let column = Column::new(&array, kind).unwrap();
            let values: Vec<Option<Value>> = (0..array.len())
                .map(|i| column.get(i).map(ValueRef::to_owned))
                .collect();
            assert!(values.iter().flatten().all(|v| v.is(kind)), "{data_type}");
            let rebuilt = build(kind, values.iter().map(Option::as_ref), &data_type).unwrap();
            assert_eq!(rebuilt.to_data(), array.to_data(), "{data_type}");
        }
    }

    #[test]
    fn nested_and_decimal_types_have_no_kind() {
        assert_eq!(Kind::of(&DataType::Decimal128(10, 2)), None);
        assert_eq!(Kind::of(&DataType::new_list(DataType::Int32, true)), None);
        assert_eq!(Kind::of(&DataType::Float16), None);
    }

    #[test]
    fn floats_compare_in_total_order() {
        let f = ValueRef::Float;
        assert_eq!(f(f64::NAN).compare(f(f64::INFINITY)), Ordering::Greater);
        assert_eq!(f(-0.0).compare(f(0.0)), Ordering::Less);
        assert_eq!(ValueRef::Str("ab").compare(ValueRef::Str("b")), Ordering::Less);
    }

    #[test]
    fn floats_survive_a_json_round_trip_bit_for_bit() {
        let values = vec![
            Value::Float(f64::NAN),
            Value::Float(0.1 + 0.2),
            Value::Float(f64::NEG_INFINITY),
        ];
        let json = serde_json::to_string(&values).unwrap();
        let back: Vec<Value> = serde_json::from_str(&json).unwrap();
        for (a, b) in values.iter().zip(&back) {
            let (Value::Float(a), Value::Float(b)) = (a, b) else {
                panic!()
            };
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }
}
