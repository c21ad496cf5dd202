//! Group keys as bytes: one row's `group_by` values encoded so that equal keys give equal
//! bytes and byte order is value order (nulls first), which is the order rows of one window
//! are emitted in. The encoding is part of snapshot format 1: do not change it.
//!
//! Per column: `0x00` for null, else `0x01` and then
//! - bool: one byte, 0 or 1;
//! - int: 8 bytes big-endian with the sign bit flipped;
//! - uint: 8 bytes big-endian;
//! - string: its bytes with each `0x00` written `0x00 0x01`, then `0x00 0x00`.

use crate::value::{Column, Kind, Value, ValueRef};

/// Append the key of `row` over `columns` to `out`.
pub fn encode(columns: &[Column], row: usize, out: &mut Vec<u8>) {
    for column in columns {
        match column.get(row) {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                encode_value(value, out);
            }
        }
    }
}

fn encode_value(value: ValueRef<'_>, out: &mut Vec<u8>) {
    match value {
        ValueRef::Bool(b) => out.push(u8::from(b)),
        ValueRef::Int(n) => out.extend_from_slice(&((n as u64) ^ (1 << 63)).to_be_bytes()),
        ValueRef::UInt(n) => out.extend_from_slice(&n.to_be_bytes()),
        ValueRef::Str(s) => escape(s.as_bytes(), out),
        ValueRef::Bytes(b) => escape(b, out),
        // Invariant: `plan` admits no float key columns; encode the bits for completeness.
        ValueRef::Float(f) => out.extend_from_slice(&f.to_bits().to_be_bytes()),
    }
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.contains(&0) {
        out.extend_from_slice(bytes);
        out.extend_from_slice(&[0, 0]);
        return;
    }
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(1);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// An encoded key as the contract's `keyed-state` text (see `sluice_sdk::key_text`): each
/// value as a producer would write it as a partition key; `None` for bytes that are not a
/// key of `kinds`.
pub fn text(bytes: &[u8], kinds: &[Kind]) -> Option<String> {
    let values = decode(bytes, kinds)?;
    let parts: Vec<Option<String>> = values
        .into_iter()
        .map(|v| {
            v.map(|v| match v {
                Value::Bool(b) => b.to_string(),
                Value::Int(n) => n.to_string(),
                Value::UInt(n) => n.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Str(s) => s,
                Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
            })
        })
        .collect();
    Some(sluice_sdk::key_text(&parts))
}

/// The values of an encoded key with columns of `kinds`; `None` when the bytes are not
/// such a key (a corrupt snapshot).
pub fn decode(mut bytes: &[u8], kinds: &[Kind]) -> Option<Vec<Option<Value>>> {
    let mut values = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        let (&tag, rest) = bytes.split_first()?;
        bytes = rest;
        match tag {
            0 => values.push(None),
            1 => {
                let (value, rest) = decode_value(bytes, kind)?;
                bytes = rest;
                values.push(Some(value));
            }
            _ => return None,
        }
    }
    bytes.is_empty().then_some(values)
}

fn decode_value(bytes: &[u8], kind: Kind) -> Option<(Value, &[u8])> {
    let fixed = |bytes: &[u8]| -> Option<([u8; 8], usize)> { Some((bytes.get(..8)?.try_into().ok()?, 8)) };
    Some(match kind {
        Kind::Bool => match bytes.split_first()? {
            (0, rest) => (Value::Bool(false), rest),
            (1, rest) => (Value::Bool(true), rest),
            _ => return None,
        },
        Kind::Int => {
            let (b, n) = fixed(bytes)?;
            (Value::Int((u64::from_be_bytes(b) ^ (1 << 63)) as i64), &bytes[n..])
        }
        Kind::UInt => {
            let (b, n) = fixed(bytes)?;
            (Value::UInt(u64::from_be_bytes(b)), &bytes[n..])
        }
        Kind::Float => {
            let (b, n) = fixed(bytes)?;
            (Value::Float(f64::from_bits(u64::from_be_bytes(b))), &bytes[n..])
        }
        Kind::Str => {
            let (raw, rest) = unescape(bytes)?;
            (Value::Str(String::from_utf8(raw).ok()?), rest)
        }
        Kind::Bytes => {
            let (raw, rest) = unescape(bytes)?;
            (Value::Bytes(raw), rest)
        }
    })
}

fn unescape(bytes: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut raw = Vec::new();
    let mut i = 0;
    loop {
        let b = *bytes.get(i)?;
        if b == 0 {
            match *bytes.get(i + 1)? {
                0 => return Some((raw, &bytes[i + 2..])),
                1 => i += 1,
                _ => return None,
            }
        }
        raw.push(b);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_sdk::arrow::array::{ArrayRef, BooleanArray, Int32Array, StringArray, UInt16Array};

    use super::*;

    fn keys(columns: Vec<(ArrayRef, Kind)>) -> Vec<Vec<u8>> {
        let rows = columns[0].0.len();
        let columns: Vec<Column> = columns.iter().map(|(a, k)| Column::new(a, *k).unwrap()).collect();
        (0..rows)
            .map(|row| {
                let mut out = Vec::new();
                encode(&columns, row, &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn keys_round_trip_and_sort_like_their_values() {
        let strings: ArrayRef = Arc::new(StringArray::from(vec![
            Some("b"),
            None,
            Some("a\0"),
            Some("a"),
            Some("a\u{1}"),
            Some(""),
            Some("ab"),
        ]));
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![
            Some(-1),
            Some(5),
            None,
            Some(i32::MIN),
            Some(0),
            Some(3),
            Some(2),
        ]));
        let encoded = keys(vec![(strings.clone(), Kind::Str), (ints.clone(), Kind::Int)]);
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by(|&a, &b| encoded[a].cmp(&encoded[b]));
        // null, "", "a", "a\0", "a\u{1}", "ab", "b"
        assert_eq!(order, [1, 5, 3, 2, 4, 6, 0]);
        let decoded = decode(&encoded[2], &[Kind::Str, Kind::Int]).unwrap();
        assert_eq!(decoded, [Some(Value::Str("a\0".into())), None]);
        let decoded = decode(&encoded[3], &[Kind::Str, Kind::Int]).unwrap();
        assert_eq!(
            decoded,
            [Some(Value::Str("a".into())), Some(Value::Int(i32::MIN.into()))]
        );
    }

    #[test]
    fn integers_sort_by_value_across_the_sign() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![3, -2, 0, i32::MAX, i32::MIN]));
        let mut encoded = keys(vec![(ints, Kind::Int)]);
        encoded.sort();
        let values: Vec<_> = encoded.iter().map(|k| decode(k, &[Kind::Int]).unwrap()).collect();
        let expected: Vec<_> = [i32::MIN, -2, 0, 3, i32::MAX]
            .into_iter()
            .map(|n| vec![Some(Value::Int(n.into()))])
            .collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn booleans_and_unsigned_round_trip() {
        let bools: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]));
        let uints: ArrayRef = Arc::new(UInt16Array::from(vec![Some(7), Some(u16::MAX), None]));
        let encoded = keys(vec![(bools, Kind::Bool), (uints, Kind::UInt)]);
        let decoded: Vec<_> = encoded
            .iter()
            .map(|k| decode(k, &[Kind::Bool, Kind::UInt]).unwrap())
            .collect();
        assert_eq!(
            decoded,
            [
                vec![Some(Value::Bool(true)), Some(Value::UInt(7))],
                vec![None, Some(Value::UInt(u16::MAX.into()))],
                vec![Some(Value::Bool(false)), None],
            ]
        );
    }

    #[test]
    fn malformed_bytes_do_not_decode() {
        assert_eq!(decode(&[], &[Kind::Int]), None);
        assert_eq!(decode(&[2], &[Kind::Int]), None);
        assert_eq!(decode(&[1, 0, 0], &[Kind::Int]), None);
        assert_eq!(decode(&[1, b'a', 0], &[Kind::Str]), None);
        assert_eq!(decode(&[1, b'a', 0, 2], &[Kind::Str]), None);
        assert_eq!(decode(&[0, 0], &[Kind::Str]), None, "trailing bytes");
        assert_eq!(decode(&[1, 0xff, 0, 0], &[Kind::Str]), None, "not utf-8");
        assert_eq!(decode(&[], &[]), Some(vec![]));
    }
}
