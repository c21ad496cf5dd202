//! Series keys as bytes, so a string key is looked up without allocating: equal key values
//! give equal bytes. Without a key column every row has the empty key (one global series);
//! a null key value is a series of its own, as `GROUP BY` treats nulls.
//!
//! A key is one tag byte, then the value: `0` null; `1` and an i64 big-endian (signed
//! integer columns); `2` and a u64 big-endian (unsigned); `3` and the UTF-8 bytes (strings).
//!
//! Most keys also pack into one u128 ([`pack`]), which the store looks up without hashing
//! or comparing bytes; [`Keys::packed`] reads a row's packed key straight from the column.

use serde::{Deserialize, Serialize};
use sluice_sdk::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, LargeStringArray, StringArray, StringViewArray, UInt64Array,
};
use sluice_sdk::arrow::compute::cast;
use sluice_sdk::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use sluice_sdk::arrow::error::ArrowError;
use sluice_sdk::short_key;

/// An encoded key.
pub type Key = Vec<u8>;

const NULL: u8 = 0;
const INT: u8 = 1;
const UINT: u8 = 2;
const STR: u8 = 3;

/// Packed keys other than strings: their top byte is above any string's length (at most
/// 15, see [`short_key::packed`]); integers keep their 64 bits in the low half.
const PACKED_GLOBAL: u128 = 16 << 120;
const PACKED_NULL: u128 = 17 << 120;
const PACKED_INT: u128 = 18 << 120;
const PACKED_UINT: u128 = 19 << 120;

/// The key `key` as one u128, if it packs: the global and null keys, every integer, and
/// strings of at most 15 bytes (as [`short_key::packed`] packs them). Two keys pack to the
/// same number only if they are equal, and [`unpack`] gives the key back.
pub fn pack(key: &[u8]) -> Option<u128> {
    let eight = |rest: &[u8]| -> Option<u64> { Some(u64::from_be_bytes(rest.try_into().ok()?)) };
    match key.split_first() {
        None => Some(PACKED_GLOBAL),
        Some((&NULL, [])) => Some(PACKED_NULL),
        Some((&INT, rest)) => eight(rest).map(|n| PACKED_INT | u128::from(n)),
        Some((&UINT, rest)) => eight(rest).map(|n| PACKED_UINT | u128::from(n)),
        Some((&STR, rest)) => short_key::packed(rest, 0, rest.len()),
        Some(_) => None,
    }
}

/// The key a number from [`pack`] or [`Keys::packed`] holds.
pub fn unpack(packed: u128) -> Key {
    if let Some(bytes) = short_key::unpacked(packed) {
        let mut key = vec![STR];
        key.extend_from_slice(&bytes);
        return key;
    }
    let low = (packed as u64).to_be_bytes();
    let tagged = |tag: u8| [&[tag][..], &low].concat();
    match packed & !(u128::from(u64::MAX)) {
        PACKED_NULL => vec![NULL],
        PACKED_INT => tagged(INT),
        PACKED_UINT => tagged(UINT),
        // PACKED_GLOBAL: `pack` makes no other number.
        _ => Vec::new(),
    }
}

/// The kinds of key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// int8 … int64.
    Int,
    /// uint8 … uint64.
    UInt,
    /// utf8, large utf8, utf8 view.
    Str,
}

impl KeyKind {
    /// The kind of a key column type, `None` if it cannot be a key.
    pub fn of(data_type: &DataType) -> Option<KeyKind> {
        use DataType::*;
        Some(match data_type {
            Int8 | Int16 | Int32 | Int64 => KeyKind::Int,
            UInt8 | UInt16 | UInt32 | UInt64 => KeyKind::UInt,
            Utf8 | LargeUtf8 | Utf8View => KeyKind::Str,
            _ => return None,
        })
    }

    /// The name in snapshots and messages.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Int => "int",
            KeyKind::UInt => "uint",
            KeyKind::Str => "str",
        }
    }
}

/// A key column of one batch, ready to encode row by row.
#[derive(Debug)]
pub enum Keys {
    /// No key column: one series.
    Global,
    Int(Int64Array),
    UInt(UInt64Array),
    Str(StringArray),
    LargeStr(LargeStringArray),
    View(StringViewArray),
}

impl Keys {
    /// Read `column` (of a type [`KeyKind::of`] accepts), or the global key for `None`.
    pub fn new(column: Option<&ArrayRef>) -> Result<Keys, ArrowError> {
        let Some(column) = column else {
            return Ok(Keys::Global);
        };
        let unsupported = || ArrowError::InvalidArgumentError(format!("cannot key by {}", column.data_type()));
        Ok(match KeyKind::of(column.data_type()).ok_or_else(unsupported)? {
            KeyKind::Int => Keys::Int(cast(column, &DataType::Int64)?.as_primitive::<Int64Type>().clone()),
            KeyKind::UInt => Keys::UInt(cast(column, &DataType::UInt64)?.as_primitive::<UInt64Type>().clone()),
            KeyKind::Str => match column.data_type() {
                DataType::Utf8 => Keys::Str(column.as_string::<i32>().clone()),
                DataType::LargeUtf8 => Keys::LargeStr(column.as_string::<i64>().clone()),
                _ => Keys::View(column.as_string_view().clone()),
            },
        })
    }

    /// The key of `row` packed (see [`pack`]), `None` if it does not pack (a string of more
    /// than 15 bytes). Read from the column without encoding the key.
    #[inline]
    pub fn packed(&self, row: usize) -> Option<u128> {
        let str_key = |s: &str| short_key::packed(s.as_bytes(), 0, s.len());
        match self {
            Keys::Global => Some(PACKED_GLOBAL),
            Keys::Int(a) if a.is_valid(row) => Some(PACKED_INT | u128::from(a.value(row) as u64)),
            Keys::UInt(a) if a.is_valid(row) => Some(PACKED_UINT | u128::from(a.value(row))),
            Keys::Str(a) if a.is_valid(row) => {
                let offsets = a.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                short_key::packed(a.values(), start, end - start)
            }
            Keys::LargeStr(a) if a.is_valid(row) => str_key(a.value(row)),
            Keys::View(a) if a.is_valid(row) => str_key(a.value(row)),
            _ => Some(PACKED_NULL),
        }
    }

    /// Replace `out` with the key of `row`.
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) {
        out.clear();
        let null = match self {
            Keys::Global => return,
            Keys::Int(a) => a.is_null(row),
            Keys::UInt(a) => a.is_null(row),
            Keys::Str(a) => a.is_null(row),
            Keys::LargeStr(a) => a.is_null(row),
            Keys::View(a) => a.is_null(row),
        };
        if null {
            out.push(NULL);
            return;
        }
        match self {
            Keys::Global => {}
            Keys::Int(a) => encode_value(&KeyValue::Int(a.value(row)), out),
            Keys::UInt(a) => encode_value(&KeyValue::UInt(a.value(row)), out),
            Keys::Str(a) => encode_str(a.value(row), out),
            Keys::LargeStr(a) => encode_str(a.value(row), out),
            Keys::View(a) => encode_str(a.value(row), out),
        }
    }
}

fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.push(STR);
    out.extend_from_slice(s.as_bytes());
}

/// A non-null key value, as snapshots spell it (`{"str": "raspberrypi-0"}`, `{"int": 7}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyValue {
    Int(i64),
    UInt(u64),
    Str(String),
}

fn encode_value(value: &KeyValue, out: &mut Vec<u8>) {
    match value {
        KeyValue::Int(n) => {
            out.push(INT);
            out.extend_from_slice(&n.to_be_bytes());
        }
        KeyValue::UInt(n) => {
            out.push(UINT);
            out.extend_from_slice(&n.to_be_bytes());
        }
        KeyValue::Str(s) => encode_str(s, out),
    }
}

/// The key of `value` (`None` for null) under a key column of `kind` (`None` for none).
/// `None` when the value cannot come from such a column (a snapshot taken under another
/// key).
pub fn from_value(value: Option<&KeyValue>, kind: Option<KeyKind>) -> Option<Key> {
    let mut out = Vec::new();
    match (value, kind) {
        (None, None) => {}
        (None, Some(_)) => out.push(NULL),
        (Some(v), Some(kind)) if value_kind(v) == kind => encode_value(v, &mut out),
        (Some(_), _) => return None,
    }
    Some(out)
}

/// The value of an encoded key; `None` for the global or a null key.
pub fn to_value(key: &[u8]) -> Option<KeyValue> {
    let (&tag, rest) = key.split_first()?;
    let eight = || -> Option<[u8; 8]> { rest.try_into().ok() };
    match tag {
        INT => eight().map(|b| KeyValue::Int(i64::from_be_bytes(b))),
        UINT => eight().map(|b| KeyValue::UInt(u64::from_be_bytes(b))),
        STR => std::str::from_utf8(rest).ok().map(|s| KeyValue::Str(s.to_owned())),
        _ => None,
    }
}

fn value_kind(value: &KeyValue) -> KeyKind {
    match value {
        KeyValue::Int(_) => KeyKind::Int,
        KeyValue::UInt(_) => KeyKind::UInt,
        KeyValue::Str(_) => KeyKind::Str,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_sdk::arrow::array::{Int16Array, UInt8Array};

    use super::*;

    fn encoded(column: ArrayRef) -> Vec<Key> {
        let keys = Keys::new(Some(&column)).unwrap();
        (0..column.len())
            .map(|row| {
                let mut out = vec![9];
                keys.encode(row, &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn equal_values_give_equal_keys_whatever_the_string_layout() {
        let small: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("")]));
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("")]));
        let view: ArrayRef = Arc::new(StringViewArray::from(vec![Some("a"), None, Some("")]));
        let keys = encoded(small);
        assert_eq!(keys, [vec![STR, b'a'], vec![NULL], vec![STR]]);
        assert_eq!(encoded(large), keys);
        assert_eq!(encoded(view), keys);
    }

    #[test]
    fn integer_keys_round_trip_through_their_snapshot_spelling() {
        let ints: ArrayRef = Arc::new(Int16Array::from(vec![Some(-3), None]));
        let uints: ArrayRef = Arc::new(UInt8Array::from(vec![Some(200)]));
        let ints = encoded(ints);
        assert_eq!(to_value(&ints[0]), Some(KeyValue::Int(-3)));
        assert_eq!(to_value(&ints[1]), None);
        assert_eq!(
            from_value(Some(&KeyValue::Int(-3)), Some(KeyKind::Int)),
            Some(ints[0].clone())
        );
        assert_eq!(from_value(None, Some(KeyKind::Int)), Some(ints[1].clone()));
        let uints = encoded(uints);
        assert_eq!(to_value(&uints[0]), Some(KeyValue::UInt(200)));
    }

    #[test]
    fn a_rows_packed_key_is_its_encoded_key_packed_and_packing_is_reversible() {
        let long = "sixteen bytes!!!";
        let strings = vec![
            Some(""),
            Some("\0"),
            None,
            Some("a"),
            Some("raspberrypi-12"),
            Some("raspberrypi-123"),
            Some(long),
            Some("é"),
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(strings.clone())),
            Arc::new(LargeStringArray::from(strings.clone())),
            Arc::new(StringViewArray::from(strings)),
            Arc::new(Int64Array::from(vec![
                Some(0),
                Some(-1),
                None,
                Some(i64::MIN),
                Some(i64::MAX),
                Some(256),
            ])),
            Arc::new(UInt64Array::from(vec![Some(0), Some(u64::MAX), None, Some(1 << 63)])),
        ];
        let mut all = std::collections::HashMap::new();
        let mut check = |keys: &Keys, rows: usize| {
            for row in 0..rows {
                let mut encoded = Vec::new();
                keys.encode(row, &mut encoded);
                let packed = keys.packed(row);
                assert_eq!(packed, pack(&encoded), "row {row} of {keys:?}");
                let Some(packed) = packed else {
                    assert!(encoded.len() > 16, "only long strings do not pack");
                    continue;
                };
                assert_eq!(unpack(packed), encoded);
                let earlier = all.insert(packed, encoded.clone());
                assert!(
                    earlier.as_ref().is_none_or(|e| *e == encoded),
                    "{encoded:?} packs like {earlier:?}"
                );
            }
        };
        for column in &columns {
            check(&Keys::new(Some(column)).unwrap(), column.len());
        }
        check(&Keys::Global, 1);
        // The short strings and integers, the null and the global key: 6 + 5 + 3 + 1 + 1.
        assert_eq!(all.len(), 16);
        // Not keys of any column.
        assert_eq!(pack(&[9]), None);
        assert_eq!(pack(&[INT, 1, 2]), None);
        assert_eq!(pack(&[NULL, 0]), None);
    }

    #[test]
    fn the_global_key_is_empty_and_foreign_values_are_refused() {
        let mut out = vec![1, 2];
        Keys::Global.encode(0, &mut out);
        assert!(out.is_empty());
        assert_eq!(from_value(None, None), Some(Vec::new()));
        assert_eq!(from_value(Some(&KeyValue::Int(1)), None), None);
        assert_eq!(from_value(Some(&KeyValue::Int(1)), Some(KeyKind::Str)), None);
        assert_eq!(from_value(Some(&KeyValue::Str("x".into())), Some(KeyKind::UInt)), None);
    }
}
