//! The fast path of the JSON decoder: a record that is one flat JSON object of scalar values,
//! with keys and strings free of escapes (what sensor fleets and app events send), is read by
//! this byte scanner instead of serde. Anything else — an escape, a nested or refused value,
//! a value that does not fit its column, malformed JSON — makes it give up (`None`), and the
//! serde path reads the record again from the start: that path alone says why a record is
//! refused. The conversions are the serde path's own ([`value`]), and numbers are split into
//! integers and floats exactly as serde_json does, so a record the fast path takes gives the
//! same cells either way (`tests` compares the two on every record they both see).

use std::borrow::Cow;

use super::record::Layout;
use super::value::{self, Cell};
use crate::config::FieldType;

/// Read `record` into `row` (all `Null` on entry), or `None` to leave it to serde (then `row`
/// may hold some cells, to be cleared).
pub(super) fn read<'a>(layout: &Layout, record: &'a [u8], row: &mut [Cell<'a>]) -> Option<()> {
    // One validation for the whole record; every string is then a slice of it.
    let mut s = Scan {
        text: std::str::from_utf8(record).ok()?,
        at: 0,
    };
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
                Some(i) => {
                    row[i] = cell(layout, i, &mut s)?;
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
    (s.at == record.len()).then_some(())
}

/// A column's name as the JSON key that names it with no escapes, when there is one: then
/// those bytes in a record are that key and no other.
pub(super) fn key(name: &str) -> Option<Box<[u8]>> {
    if name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        return None;
    }
    Some(format!("\"{name}\"").into_bytes().into_boxed_slice())
}

/// The value of column `i`, converted as the serde path converts it.
#[inline]
fn cell<'a>(layout: &Layout, i: usize, s: &mut Scan<'a>) -> Option<Cell<'a>> {
    let kind = layout.kinds[i]?;
    let (coerce, times) = (layout.coerce, layout.numeric_times);
    let converted = match s.peek()? {
        b'"' if kind == FieldType::Utf8 => return s.string().map(|v| Cell::Str(Cow::Borrowed(v))),
        b'-' | b'0'..=b'9' if kind == FieldType::Float64 => {
            // What `value::from_*` give a float64 column, without their error plumbing (every
            // integer here has at most 18 digits, so it is an exact i64).
            return Some(Cell::Float(match s.number()? {
                Number::F64(v) => v,
                Number::U64(v) => v as i64 as f64,
                Number::I64(v) => v as f64,
            }));
        }
        b'"' => value::from_str(kind, coerce, Cow::Borrowed(s.string()?)),
        b'n' => return s.literal("null").map(|()| Cell::Null),
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
    converted.ok()
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

/// A cursor over one record (valid UTF-8).
struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
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
        let Some(rest) = self.text.as_bytes().get(self.at..self.at + prefix.len()) else {
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
        (self.text.as_bytes().get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// A string without escapes or control characters.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        loop {
            match *bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        // Both ends are ASCII quotes, so both are character boundaries.
        self.text.get(start..self.at - 1)
    }

    /// A number in JSON's grammar. Integers of more than 18 digits are left to serde (which
    /// reads some as floats); a float that overflows is serde's error to give. A float whose
    /// digits fit in 2^53 with at most 22 decimals is one exact division (correctly rounded,
    /// as every float here must be); others go through the standard library's parser.
    #[inline]
    fn number(&mut self) -> Option<Number> {
        let start = self.at;
        let bytes = self.text.as_bytes();
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
        let v: f64 = self.text.get(start..self.at)?.parse().ok()?;
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
    use serde::Deserialize;

    use super::*;
    use crate::config::Coerce;

    fn number(text: &str) -> Option<Number> {
        let mut s = Scan { text, at: 0 };
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
                    let mut fast = vec![Cell::Null; layout.names.len()];
                    let mut slow = vec![Cell::Null; layout.names.len()];
                    let serde = layout.read_with_serde(text.as_bytes(), &mut slow);
                    if read(&layout, text.as_bytes(), &mut fast).is_some() {
                        taken += 1;
                        assert_eq!(serde, Ok(()), "{text}: the fast path took what serde refuses");
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
            text: "\"client_idx\": 1",
            at: 0,
        };
        assert!(!s.skip_prefix(b"\"client_id\""));
        assert!(s.skip_prefix(b"\"client_idx\""));
        assert_eq!(s.at, 12);
    }

    #[test]
    fn sensor_records_take_the_fast_path() {
        let layout = layout(Coerce::Strict, false, false);
        let text = br#"{"s": "raspberrypi-0", "t": "2020-04-16 10:40:00", "d": 40.89, "other": -2.83, "l": 1}"#;
        let mut row = vec![Cell::Null; layout.names.len()];
        assert_eq!(read(&layout, text, &mut row), Some(()));
        assert_eq!(row[0], Cell::Str(Cow::Borrowed("raspberrypi-0")));
        assert_eq!(row[5], Cell::Float(40.89));
        assert_eq!(row[3], Cell::Int(1));
    }

    #[test]
    fn strings_with_escapes_or_control_characters_are_left_to_serde() {
        let string = |text: &str| {
            let mut s = Scan { text, at: 0 };
            s.string().map(str::to_owned)
        };
        assert_eq!(string("\"plain é\""), Some("plain é".into()));
        assert_eq!(string("\"a\\\"b\""), None);
        assert_eq!(string("\"tab\there\""), None);
        assert_eq!(string("\"open"), None);
        assert_eq!(string("\"\u{ff}\""), Some("\u{ff}".into()));
        let layout = layout(Coerce::Strict, false, false);
        let invalid = [b'{', b'"', b's', b'"', b':', b'"', 0xff, b'"', b'}'];
        let mut row = vec![Cell::Null; layout.names.len()];
        assert_eq!(read(&layout, &invalid, &mut row), None, "not UTF-8");
    }
}
