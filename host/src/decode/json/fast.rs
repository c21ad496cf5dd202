//! The fast path of the JSON decoder: a record that is one flat JSON object of scalar values,
//! with keys and strings free of escapes (what sensor fleets and app events send), is read by
//! this byte scanner straight into the chunk's columns instead of through serde. Anything
//! else — an escape, a nested or refused value, a value that does not fit its column, a key
//! given twice, a required column left empty, malformed JSON — makes it give up (`None`),
//! the caller cuts the columns back to the rows before the record, and the serde path reads
//! the record again from the start: that path alone says why a record is refused. The
//! conversions are the serde path's own ([`value`]), and numbers are split into integers and
//! floats exactly as serde_json does, so a record the fast path takes gives the same cells
//! either way (`tests` compares the two on every record they both see).

use std::borrow::Cow;

use super::columns::Columns;
use super::record::Layout;
use super::timestamp;
use super::value::{self, Cell};
use crate::config::FieldType;

/// Read `record` into the row being written in `columns`, or `None` to leave it to serde
/// (then `columns` may hold some of the row's values, to be cut back).
pub(super) fn read<'a>(layout: &Layout, record: &'a [u8], columns: &mut Columns<'a>) -> Option<()> {
    // Bytes outside strings must be ASCII to be read at all; strings are checked for UTF-8
    // as they are read, so no pass over the whole record is needed.
    let mut s = Scan { bytes: record, at: 0 };
    s.space();
    s.eat(b'{')?;
    s.space();
    if s.peek() == Some(b'}') {
        s.at += 1;
    } else {
        let mut hint = 0;
        loop {
            // Keys mostly come in the schema's order: the next column's key is tried first,
            // as bytes in place.
            let column = if let Some(Some(key)) = layout.keys.get(hint)
                && s.skip_prefix(key)
            {
                Some(hint)
            } else {
                let key = s.string()?;
                layout.names.iter().position(|n| n == key)
            };
            s.space();
            s.eat(b':')?;
            s.space();
            match column {
                // A key given twice is serde's to judge.
                Some(i) if columns.has_value(i) => return None,
                Some(i) => {
                    put(layout, i, &mut s, columns)?;
                    hint = i + 1;
                }
                None if layout.refuse_unknown => return None,
                None => s.skip_scalar()?,
            }
            s.space();
            match s.next()? {
                b',' => s.space(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.space();
    if s.at != record.len() {
        return None;
    }
    // Columns the record did not name are null, unless they are required.
    for i in 0..layout.names.len() {
        if !columns.has_value(i) {
            if !layout.nullable[i] {
                return None;
            }
            columns.push_null(i);
        }
    }
    Some(())
}

/// A column's name as the JSON key that names it with no escapes, when there is one: then
/// those bytes in a record are that key and no other.
pub(super) fn key(name: &str) -> Option<Box<[u8]>> {
    if name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        return None;
    }
    Some(format!("\"{name}\"").into_bytes().into_boxed_slice())
}

/// The value of column `i`, converted as the serde path converts it, into `columns`.
#[inline]
fn put<'a>(layout: &Layout, i: usize, s: &mut Scan<'a>, columns: &mut Columns<'a>) -> Option<()> {
    let kind = layout.kinds[i]?;
    let (coerce, times) = (layout.coerce, layout.numeric_times);
    let converted = match s.peek()? {
        b'"' if kind == FieldType::Utf8 => {
            columns.push_str(i, s.string()?);
            return Some(());
        }
        b'-' | b'0'..=b'9' if kind == FieldType::Float64 => {
            // What `value::from_*` give a float64 column, without their error plumbing (every
            // integer here has at most 18 digits, so it is an exact i64).
            columns.push_f64(
                i,
                match s.number()? {
                    Number::F64(v) => v,
                    Number::U64(v) => v as i64 as f64,
                    Number::I64(v) => v as f64,
                },
            );
            return Some(());
        }
        b'-' | b'0'..=b'9' if kind == FieldType::Int64 => match s.number()? {
            // What `value::of_*` give an int64 column: every integer here has at most 18
            // digits, so it is an exact i64; a float is theirs to judge.
            Number::U64(v) => {
                columns.push_i64(i, v as i64);
                return Some(());
            }
            Number::I64(v) => {
                columns.push_i64(i, v);
                return Some(());
            }
            Number::F64(v) => value::from_f64(kind, coerce, v),
        },
        b'"' if kind == FieldType::Timestamp => {
            let text = s.string()?;
            match timestamp::micros_on(text, &mut columns.last_time) {
                Some(micros) => Ok(Cell::Int(micros)),
                // The serde path's words for a string that is not a timestamp.
                None => value::from_str(kind, coerce, Cow::Borrowed(text)),
            }
        }
        b'"' => value::from_str(kind, coerce, Cow::Borrowed(s.string()?)),
        b'n' => {
            s.literal("null")?;
            Ok(Cell::Null)
        }
        b't' => {
            s.literal("true")?;
            value::from_bool(kind, coerce, true)
        }
        b'f' => {
            s.literal("false")?;
            value::from_bool(kind, coerce, false)
        }
        b'-' | b'0'..=b'9' => match s.number()? {
            Number::U64(v) => value::of_u64(kind, coerce, times, v),
            Number::I64(v) => value::of_i64(kind, coerce, times, v),
            Number::F64(v) => value::from_f64(kind, coerce, v),
        },
        _ => return None,
    };
    let cell = converted.ok()?;
    if matches!(cell, Cell::Null) && !layout.nullable[i] {
        return None;
    }
    columns.push(i, cell);
    Some(())
}

/// A JSON number as serde_json reads it: a non-negative integer is `U64`, a negative one
/// `I64`, anything with a fraction or an exponent (and `-0`) `F64`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// Powers of ten that are exact in an f64.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// The high bit of every byte of a word.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Each byte of a word set to `byte`.
const fn splat(byte: u8) -> u64 {
    0x0101_0101_0101_0101 * byte as u64
}

/// The high bit set in the byte of `word` (little-endian: its first byte is the lowest) that
/// is a quote, a backslash or below 0x20, and maybe in bytes after it, never before: a
/// subtraction borrows only from a byte that matched into the byte after it. Zero when no
/// byte is one of those.
#[inline]
const fn stops(word: u64) -> u64 {
    let below_space = word.wrapping_sub(splat(0x20)) & !word;
    let quote = word ^ splat(b'"');
    let backslash = word ^ splat(b'\\');
    let zero_in_quote = quote.wrapping_sub(splat(1)) & !quote;
    let zero_in_backslash = backslash.wrapping_sub(splat(1)) & !backslash;
    (below_space | zero_in_quote | zero_in_backslash) & HIGH_BITS
}

/// A cursor over one record.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    #[inline]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// JSON's whitespace (not Rust's: no form feed).
    #[inline]
    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Step over `prefix` if the text goes on with it (compared eight bytes at a time: keys
    /// are short, and a call to `memcmp` per key costs more than the comparison).
    #[inline]
    fn skip_prefix(&mut self, prefix: &[u8]) -> bool {
        let Some(rest) = self.bytes.get(self.at..self.at + prefix.len()) else {
            return false;
        };
        let ((words, tail), (want_words, want_tail)) = (rest.as_chunks::<8>(), prefix.as_chunks::<8>());
        let same = words
            .iter()
            .zip(want_words)
            .all(|(a, b)| u64::from_ne_bytes(*a) == u64::from_ne_bytes(*b))
            && tail.iter().zip(want_tail).all(|(a, b)| a == b);
        if same {
            self.at += prefix.len();
        }
        same
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// A string without escapes or control characters.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let bytes = self.bytes;
        // Eight bytes at a time up to the first that ends the fast path (a quote, a
        // backslash or a control character); the bytes loop below reads that one.
        let mut high_words = 0u64;
        while let Some(chunk) = bytes.get(self.at..self.at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let stops = stops(word);
            if stops != 0 {
                let before = stops.trailing_zeros() / 8;
                high_words |= word & ((1u64 << (before * 8)) - 1);
                self.at += before as usize;
                break;
            }
            high_words |= word;
            self.at += 8;
        }
        let mut high = u8::from(high_words & HIGH_BITS != 0) << 7;
        loop {
            match *bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                b => {
                    high |= b;
                    self.at += 1;
                }
            }
        }
        self.at += 1;
        let text = &bytes[start..self.at - 1];
        if high < 0x80 {
            // SAFETY: every byte is below 0x80: ASCII, which is valid UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(text) })
        } else {
            std::str::from_utf8(text).ok()
        }
    }

    /// A number in JSON's grammar. Integers of more than 18 digits are left to serde (which
    /// reads some as floats); a float that overflows is serde's error to give. A float whose
    /// digits fit in 2^53 with at most 22 decimals is one exact division (correctly rounded,
    /// as every float here must be); others go through the standard library's parser.
    #[inline]
    fn number(&mut self) -> Option<Number> {
        let start = self.at;
        let bytes = self.bytes;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let digits_from = self.at;
        let mut mantissa: u64 = 0;
        while let Some(d @ b'0'..=b'9') = bytes.get(self.at).copied() {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.at += 1;
        }
        let digits = self.at - digits_from;
        if digits == 0 || (digits > 1 && bytes[digits_from] == b'0') {
            return None;
        }
        let mut decimals = 0;
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let from = self.at;
            while let Some(d @ b'0'..=b'9') = bytes.get(self.at).copied() {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                self.at += 1;
            }
            decimals = self.at - from;
            if decimals == 0 {
                return None;
            }
            integral = false;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            let from = self.at;
            while let Some(b'0'..=b'9') = self.peek() {
                self.at += 1;
            }
            if self.at == from {
                return None;
            }
            integral = false;
            exponent = true;
        }
        if integral {
            if digits > 18 {
                return None;
            }
            return Some(match (negative, mantissa) {
                (false, m) => Number::U64(m),
                // serde_json reads `-0` as the float -0.0.
                (true, 0) => Number::F64(-0.0),
                (true, m) => Number::I64(-(m as i64)),
            });
        }
        if !exponent && digits + decimals <= 19 && mantissa < (1 << 53) && decimals < EXACT_POWERS.len() {
            // Both operands are exact, so the one division is correctly rounded.
            let v = mantissa as f64 / EXACT_POWERS[decimals];
            return Some(Number::F64(if negative { -v } else { v }));
        }
        let v: f64 = std::str::from_utf8(&bytes[start..self.at]).ok()?.parse().ok()?;
        v.is_finite().then_some(Number::F64(v))
    }

    /// Step over a scalar value of a key outside the schema.
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'n' => self.literal("null"),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, AsArray};
    use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
    use serde::Deserialize;

    use super::*;
    use crate::config::Coerce;

    fn number(text: &str) -> Option<Number> {
        let mut s = Scan {
            bytes: text.as_bytes(),
            at: 0,
        };
        let n = s.number()?;
        (s.at == text.len()).then_some(n)
    }

    /// What serde_json (with the features the host enables) reads `text` as.
    fn serde_number(text: &str) -> Option<Number> {
        let mut de = serde_json::Deserializer::from_str(text);
        let n = serde_json::Number::deserialize(&mut de).ok()?;
        de.end().ok()?;
        if let Some(v) = n.as_u64() {
            Some(Number::U64(v))
        } else if let Some(v) = n.as_i64() {
            Some(Number::I64(v))
        } else {
            n.as_f64().map(Number::F64)
        }
    }

    fn same(a: Option<Number>, b: Option<Number>) -> bool {
        match (a, b) {
            (Some(Number::F64(x)), Some(Number::F64(y))) => x.to_bits() == y.to_bits(),
            (a, b) => a == b,
        }
    }

    #[test]
    fn numbers_split_and_round_as_serde_json_does() {
        for text in [
            "0",
            "-0",
            "7",
            "-7",
            "40.89",
            "-2.83",
            "1e2",
            "1E+2",
            "-1e-2",
            "0.1",
            "123456789012345678",
            "-123456789012345678",
            "9007199254740993",
            "9007199254740993.0",
            "2.2250738585072011e-308",
            "1.7976931348623157e308",
            "4.9e-324",
            "1e-400",
            "0.30000000000000004",
            "-0.0",
            "3.141592653589793238462643",
        ] {
            let ours = number(text);
            assert!(ours.is_some(), "{text} should take the fast path");
            assert!(
                same(ours, serde_number(text)),
                "{text}: {ours:?} against {:?}",
                serde_number(text)
            );
        }
    }

    #[test]
    fn what_it_does_not_take_it_leaves_to_serde() {
        // Not JSON numbers, or not ones the fast path decides.
        for text in [
            "",
            "-",
            "01",
            "-01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "1x",
            "1e400",
            "-1e400",
            "1234567890123456789",
            "18446744073709551616",
            "NaN",
            "inf",
        ] {
            assert_eq!(number(text), None, "{text}");
        }
    }

    fn layout(coerce: Coerce, refuse_unknown: bool, numeric_times: bool) -> Layout {
        let columns = [
            ("s", Some(FieldType::Utf8)),
            ("b", Some(FieldType::Bool)),
            ("i", Some(FieldType::Int32)),
            ("l", Some(FieldType::Int64)),
            ("f", Some(FieldType::Float32)),
            ("d", Some(FieldType::Float64)),
            ("t", Some(FieldType::Timestamp)),
            ("day", Some(FieldType::Date)),
            ("nested", None),
        ];
        Layout {
            names: columns.iter().map(|(n, _)| (*n).to_owned()).collect(),
            keys: columns.iter().map(|(n, _)| key(n)).collect(),
            kinds: columns.iter().map(|(_, k)| *k).collect(),
            nullable: vec![true; columns.len()],
            coerce,
            refuse_unknown,
            numeric_times,
            inferred_hint: None,
        }
    }

    /// Values of every shape, good and bad for every column.
    const VALUES: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "-0",
        "7",
        "-7",
        "3000000000",
        "-3000000000",
        "2.5",
        "-2.0",
        "1e3",
        "1e39",
        "1e400",
        "12345678901234567890",
        "40.89",
        "\"x\"",
        "\"\"",
        "\"3\"",
        "\" 2.5 \"",
        "\"true\"",
        "\"2026-01-05 10:00:00\"",
        "\"2026-01-05T10:00:00.5Z\"",
        "\"2026-01-05\"",
        "\"é€\"",
        "\"a\\nb\"",
        "[1, 2]",
        "{\"k\": 1}",
        "tru",
        "01",
        "1.",
        "-",
        "\"open",
    ];

    /// A small deterministic generator (xorshift), so the corpus is the same on every run.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn record(rng: &mut Rng) -> String {
        const KEYS: &[&str] = &["s", "b", "i", "l", "f", "d", "t", "day", "nested", "other", "s"];
        const SPACE: &[&str] = &["", " ", "\t", "\r\n ", "\u{c}"];
        let mut text = String::from(SPACE[rng.below(4)]);
        text.push('{');
        let fields = rng.below(6);
        for k in 0..fields {
            if k > 0 {
                text.push(',');
            }
            text.push_str(SPACE[rng.below(SPACE.len())]);
            text.push_str(&format!("\"{}\"", KEYS[rng.below(KEYS.len())]));
            text.push_str(SPACE[rng.below(3)]);
            text.push(':');
            text.push_str(SPACE[rng.below(3)]);
            text.push_str(VALUES[rng.below(VALUES.len())]);
        }
        if rng.below(20) == 0 {
            text.push(',');
        }
        text.push('}');
        match rng.below(30) {
            0 => text.push_str(" {}"),
            1 => text.push('x'),
            2 => text.push_str(" \n"),
            _ => {}
        }
        text
    }

    #[test]
    fn every_record_the_fast_path_takes_reads_as_serde_reads_it() {
        let mut rng = Rng(0x5eed);
        let mut taken = 0;
        let records: Vec<String> = (0..40_000).map(|_| record(&mut rng)).collect();
        for coerce in [Coerce::Strict, Coerce::Lenient] {
            for (refuse, times) in [(false, false), (true, false), (false, true)] {
                let layout = layout(coerce, refuse, times);
                for text in &records {
                    let mut slow = vec![Cell::Null; layout.names.len()];
                    let serde = layout
                        .read_with_serde(text.as_bytes(), &mut slow)
                        .and_then(|()| layout.check_required(&slow));
                    if let Some(fast) = fast_read(&layout, text.as_bytes()) {
                        taken += 1;
                        assert_eq!(serde, Ok(()), "{text}: the fast path took what serde refuses");
                        let mut columns = Columns::new(&schema(&layout), 1);
                        columns.append(&mut slow);
                        let (slow, _) = columns.finish().expect("finish");
                        assert_eq!(fast, slow, "{text} ({coerce:?}, refuse {refuse}, times {times})");
                    }
                }
            }
        }
        // The corpus is varied enough that both paths get a fair share.
        assert!(taken > 20_000, "the fast path took only {taken} records");
    }

    #[test]
    fn only_names_that_need_no_escape_are_matched_as_bytes() {
        assert_eq!(key("client_id").as_deref(), Some(&b"\"client_id\""[..]));
        // In a record, `"a\b"` is the key a-backspace, not the name `a\b`.
        assert_eq!(key("a\\b"), None);
        assert_eq!(key("say \"hi\""), None);
        let mut s = Scan {
            bytes: b"\"client_idx\": 1",
            at: 0,
        };
        assert!(!s.skip_prefix(b"\"client_id\""));
        assert!(s.skip_prefix(b"\"client_idx\""));
        assert_eq!(s.at, 12);
    }

    /// The schema a test layout decodes into.
    fn schema(layout: &Layout) -> Schema {
        let fields = layout.names.iter().zip(&layout.kinds).zip(&layout.nullable);
        Schema::new(
            fields
                .map(|((name, kind), nullable)| {
                    let data_type = match kind {
                        Some(FieldType::Utf8) => DataType::Utf8,
                        Some(FieldType::Bool) => DataType::Boolean,
                        Some(FieldType::Int32) => DataType::Int32,
                        Some(FieldType::Int64) => DataType::Int64,
                        Some(FieldType::Float32) => DataType::Float32,
                        Some(FieldType::Float64) => DataType::Float64,
                        Some(FieldType::Timestamp) => DataType::Timestamp(TimeUnit::Microsecond, None),
                        Some(FieldType::Date) => DataType::Date32,
                        None => DataType::new_list(DataType::Int64, true),
                    };
                    Field::new(name, data_type, *nullable)
                })
                .collect::<Vec<_>>(),
        )
    }

    /// The fast path's row for `text` as arrays, when it takes the record. A record it gives
    /// up on must leave the columns as they were: a second record after it proves that.
    fn fast_read(layout: &Layout, text: &[u8]) -> Option<Vec<ArrayRef>> {
        let mut columns = Columns::new(&schema(layout), 2);
        let taken = read(layout, text, &mut columns).is_some();
        if taken {
            columns.end_row();
        } else {
            columns.truncate();
        }
        let marker = br#"{"s": "after", "l": 1}"#;
        assert_eq!(
            read(layout, marker, &mut columns),
            Some(()),
            "after {:?}",
            String::from_utf8_lossy(text)
        );
        columns.end_row();
        let (arrays, _) = columns.finish().expect("finish");
        let rows = usize::from(taken);
        assert_eq!(arrays[0].len(), rows + 1);
        assert_eq!(arrays[0].as_string::<i32>().value(rows), "after");
        assert!(arrays[1..].iter().all(|a| a.len() == rows + 1));
        taken.then(|| arrays.iter().map(|a| a.slice(0, 1)).collect())
    }

    #[test]
    fn sensor_records_take_the_fast_path() {
        let mut layout = layout(Coerce::Strict, false, false);
        layout.nullable[3] = false;
        let text = br#"{"s": "raspberrypi-0", "t": "2020-04-16 10:40:00", "d": 40.89, "other": -2.83, "l": 1}"#;
        let row = fast_read(&layout, text).expect("fast path");
        assert_eq!(row[0].as_string::<i32>().value(0), "raspberrypi-0");
        assert_eq!(row[5].as_primitive::<Float64Type>().value(0), 40.89);
        assert_eq!(row[3].as_primitive::<Int64Type>().value(0), 1);
        assert!(row[1].is_null(0));
        // A key twice, or a required column missing or null, is serde's to judge.
        for text in [
            &br#"{"s": "a", "l": 1, "s": "b"}"#[..],
            br#"{"s": "a"}"#,
            br#"{"s": "a", "l": null}"#,
        ] {
            assert!(fast_read(&layout, text).is_none(), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn strings_with_escapes_or_control_characters_are_left_to_serde() {
        let string = |text: &str| {
            let mut s = Scan {
                bytes: text.as_bytes(),
                at: 0,
            };
            s.string().map(str::to_owned)
        };
        assert_eq!(string("\"plain é\""), Some("plain é".into()));
        assert_eq!(string("\"a\\\"b\""), None);
        assert_eq!(string("\"tab\there\""), None);
        assert_eq!(string("\"open"), None);
        assert_eq!(string("\"\u{ff}\""), Some("\u{ff}".into()));
        // Long strings take the eight-byte path: a stop at every position of a word, a
        // non-ASCII byte before and after it.
        for at in 0..20 {
            let mut text = format!("\"{}", "x".repeat(at));
            text.push_str("\"yyyyyyyyyyyyyyy");
            assert_eq!(string(&text), Some("x".repeat(at)), "{text:?}");
            for stop in ["\\n", "\t", "\u{1f}"] {
                let text = format!("\"{}{stop}{}\"", "x".repeat(at), "y".repeat(9));
                assert_eq!(string(&text), None, "{text:?}");
            }
            let text = format!("\"{}é{}\"", "x".repeat(at), "y".repeat(at));
            assert_eq!(string(&text), Some(format!("{}é{}", "x".repeat(at), "y".repeat(at))));
        }
        let invalid = [b'"', b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h', 0xff, b'"'];
        assert_eq!(Scan { bytes: &invalid, at: 0 }.string(), None, "not UTF-8 after a word");
        let layout = layout(Coerce::Strict, false, false);
        let invalid = [b'{', b'"', b's', b'"', b':', b'"', 0xff, b'"', b'}'];
        assert!(fast_read(&layout, &invalid).is_none(), "not UTF-8");
    }
}
