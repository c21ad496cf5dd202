//! A fast path for the formats almost everyone writes (`%Y-%m-%d %H:%M:%S`, `%Y%m%d`, …):
//! a format made only of zero-padded `%Y %m %d %H %M %S` and literal text is read by byte
//! position, about ten times faster than chrono's general parser.
//!
//! It only ever accepts what chrono would parse to the same value (exact length, digits at
//! every field position, the literals in place, a valid date and time); anything else returns
//! `None` and the caller falls back to chrono, so results never depend on the path taken.

use chrono::NaiveDate;
use chrono::format::{Item, Numeric, Pad};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

/// Where each field and literal byte sits in a matching string.
#[derive(Debug, Clone)]
pub struct FixedLayout {
    fields: Vec<(Part, usize, usize)>,
    literals: Vec<(usize, u8)>,
    len: usize,
}

impl FixedLayout {
    /// The layout of `items`, or `None` when the format has anything else in it.
    pub fn of(items: &[Item<'_>]) -> Option<Self> {
        let mut layout = FixedLayout {
            fields: Vec::new(),
            literals: Vec::new(),
            len: 0,
        };
        for item in items {
            match item {
                Item::Literal(s) | Item::Space(s) => layout.push_literal(s),
                Item::OwnedLiteral(s) | Item::OwnedSpace(s) => layout.push_literal(s),
                Item::Numeric(numeric, Pad::Zero) => {
                    let (part, width) = match numeric {
                        Numeric::Year => (Part::Year, 4),
                        Numeric::Month => (Part::Month, 2),
                        Numeric::Day => (Part::Day, 2),
                        Numeric::Hour => (Part::Hour, 2),
                        Numeric::Minute => (Part::Minute, 2),
                        Numeric::Second => (Part::Second, 2),
                        _ => return None,
                    };
                    if layout.fields.iter().any(|(p, _, _)| *p == part) {
                        return None;
                    }
                    layout.fields.push((part, layout.len, width));
                    layout.len += width;
                }
                _ => return None,
            }
        }
        let has = |p: Part| layout.fields.iter().any(|(q, _, _)| *q == p);
        // A complete date is needed; a time part may only be given with the coarser ones.
        let complete = has(Part::Year) && has(Part::Month) && has(Part::Day);
        let time_ok = (!has(Part::Minute) || has(Part::Hour)) && (!has(Part::Second) || has(Part::Minute));
        (complete && time_ok).then_some(layout)
    }

    fn push_literal(&mut self, s: &str) {
        for b in s.bytes() {
            self.literals.push((self.len, b));
            self.len += 1;
        }
    }

    /// Microseconds since the epoch (the value meaning UTC), when `s` matches exactly.
    pub fn micros(&self, s: &str) -> Option<i64> {
        let bytes = s.as_bytes();
        if bytes.len() != self.len || self.literals.iter().any(|&(i, b)| bytes[i] != b) {
            return None;
        }
        let (mut y, mut mo, mut d, mut h, mut mi, mut sec) = (0, 0, 0, 0, 0, 0);
        for &(part, at, width) in &self.fields {
            let mut v: u32 = 0;
            for &b in &bytes[at..at + width] {
                if !b.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + u32::from(b - b'0');
            }
            match part {
                Part::Year => y = v,
                Part::Month => mo = v,
                Part::Day => d = v,
                Part::Hour => h = v,
                Part::Minute => mi = v,
                Part::Second => sec = v,
            }
        }
        let date = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, mo, d)?;
        Some(date.and_hms_opt(h, mi, sec)?.and_utc().timestamp_micros())
    }
}

#[cfg(test)]
mod tests {
    use chrono::format::StrftimeItems;

    use super::*;

    fn layout(format: &str) -> Option<FixedLayout> {
        FixedLayout::of(&StrftimeItems::new(format).parse().unwrap())
    }

    fn chrono_micros(format: &str, s: &str) -> Option<i64> {
        chrono::NaiveDateTime::parse_from_str(s, format)
            .ok()
            .map(|t| t.and_utc().timestamp_micros())
    }

    #[test]
    fn the_fixed_path_agrees_with_chrono_wherever_it_answers() {
        let format = "%Y-%m-%d %H:%M:%S";
        let l = layout(format).unwrap();
        for s in [
            "2020-04-16 11:33:23",
            "1999-12-31 23:59:59",
            "2024-02-29 00:00:00",
            "2023-02-29 00:00:00",
            "2020-04-16 24:00:00",
            "2020-4-16 11:33:23",
            "2020-04-16T11:33:23",
            "2020-04-16 11:33:2x",
            "2020-04-16 11:33:23 ",
            "",
        ] {
            match l.micros(s) {
                Some(v) => assert_eq!(Some(v), chrono_micros(format, s), "{s:?}"),
                None => assert!(
                    s.len() != 19 || chrono_micros(format, s).is_none(),
                    "{s:?} should have matched"
                ),
            }
        }
        assert_eq!(l.micros("1970-01-01 00:00:01"), Some(1_000_000));
    }

    #[test]
    fn formats_with_other_specifiers_take_the_general_path() {
        assert!(layout("%Y-%m-%dT%H:%M:%S").is_some());
        assert!(layout("%Y%m%d").is_some());
        assert!(layout("%d/%m/%Y %H:%M %z").is_none());
        assert!(layout("%Y-%m-%d %H:%M:%S%.f").is_none());
        assert!(layout("%b %d %Y").is_none());
        assert!(layout("%Y-%m").is_none());
        assert!(layout("%Y-%m-%d %M").is_none());
    }
}
