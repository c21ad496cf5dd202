//! The one duration syntax of pipeline files and plugin configs (grammar in the crate doc).

use std::fmt;
use std::str::FromStr;

/// The units, largest first: spelling and length in milliseconds. `min` is another
/// spelling of `m`; the formatter writes the first spelling of each length.
const UNITS: [(&str, i64); 6] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("min", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// What [`DurationError`]'s message says is expected, whatever went wrong.
const EXPECTED: &str = "expected an integer followed by a unit (d, h, m, s or ms), or several such \
                        parts largest first, e.g. \"500ms\", \"30s\" or \"1h30m\"";

/// A length of time as pipeline files and plugin configs write it: whole milliseconds,
/// negative only when read with [`Duration::parse_signed`]. Its magnitude is at most
/// [`Duration::MAX`], so it converts to microseconds in an `i64` without overflow.
///
/// `Display` writes the canonical form: each unit at most once, largest first, zero parts
/// left out (`"1h30m"`, `"1s500ms"`, `"-5s"`, `"0s"`); it parses back to the same value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    millis: i64,
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration { millis: 0 };
    /// The longest duration: `i64::MAX` microseconds, rounded down to milliseconds
    /// (`106751991d4h54s775ms`, about 292 000 years).
    pub const MAX: Duration = Duration {
        millis: i64::MAX / 1_000,
    };
    /// The most negative duration, `-MAX`.
    pub const MIN: Duration = Duration {
        millis: -(i64::MAX / 1_000),
    };

    /// Read a duration that may not be negative (most settings: intervals, timeouts, ages).
    pub fn parse(text: &str) -> Result<Duration, DurationError> {
        parse(text, false)
    }

    /// Read a duration that may be negative, written with a leading `-` (`"-8h"`), for
    /// settings such as a window grid's offset.
    pub fn parse_signed(text: &str) -> Result<Duration, DurationError> {
        parse(text, true)
    }

    /// `millis` milliseconds, if within [`Duration::MIN`]`..=`[`Duration::MAX`].
    pub const fn from_millis(millis: i64) -> Option<Duration> {
        if millis.unsigned_abs() <= Self::MAX.millis.unsigned_abs() {
            Some(Duration { millis })
        } else {
            None
        }
    }

    /// A [`std::time::Duration`] that is whole milliseconds and at most [`Duration::MAX`].
    pub fn from_std(duration: std::time::Duration) -> Option<Duration> {
        if !duration.subsec_nanos().is_multiple_of(1_000_000) {
            return None;
        }
        Duration::from_millis(i64::try_from(duration.as_millis()).ok()?)
    }

    /// Length in milliseconds.
    pub const fn as_millis(self) -> i64 {
        self.millis
    }

    /// Length in microseconds (never overflows: see [`Duration::MAX`]).
    pub const fn as_micros(self) -> i64 {
        self.millis * 1_000
    }

    /// Whether the duration is below zero.
    pub const fn is_negative(self) -> bool {
        self.millis < 0
    }

    /// The same length as a [`std::time::Duration`]; `None` if negative.
    pub fn to_std(self) -> Option<std::time::Duration> {
        u64::try_from(self.millis).ok().map(std::time::Duration::from_millis)
    }
}

/// Parses a duration that may not be negative, as [`Duration::parse`].
impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Duration, DurationError> {
        Duration::parse(text)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return f.write_str("0s");
        }
        if self.millis < 0 {
            f.write_str("-")?;
        }
        let mut rest = self.millis.unsigned_abs();
        for (unit, len) in UNITS {
            let len = len.unsigned_abs();
            if unit == "min" || rest < len {
                continue;
            }
            write!(f, "{}{unit}", rest / len)?;
            rest %= len;
        }
        Ok(())
    }
}

/// A string that is not a duration: the text, what is wrong with it and (in the message)
/// what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {kind}; {}", EXPECTED)]
pub struct DurationError {
    text: String,
    kind: DurationErrorKind,
}

impl DurationError {
    /// The text that was refused.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What is wrong with it; its `Display` is a short phrase for messages that name the
    /// text and the expected form themselves.
    pub fn kind(&self) -> &DurationErrorKind {
        &self.kind
    }
}

/// What is wrong with a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationErrorKind {
    /// The text is empty.
    #[error("it is empty")]
    Empty,
    /// A part does not start with a digit (`"h1"`, `" 1h"`, `"+1h"`, `"1h "`).
    #[error("{}", expected_number(.after, .found))]
    ExpectedNumber {
        /// The text before the missing number (empty at the start).
        after: String,
        /// The character found instead; `None` at the end of the text.
        found: Option<char>,
    },
    /// A number ends the text (`"30"`, `"1h30"`).
    #[error("{number} has no unit")]
    MissingUnit {
        /// The digits without a unit.
        number: String,
    },
    /// A number is followed by something other than a unit (`"1.5h"`, `"1 h"`).
    #[error("{}", expected_unit(.number, .found))]
    ExpectedUnit {
        /// The digits before it.
        number: String,
        /// The character found instead of a unit.
        found: char,
    },
    /// Letters that are not a unit (`"1w"`, `"1H"`, `"1sec"`).
    #[error("unknown unit {unit:?}")]
    UnknownUnit {
        /// The letters as written.
        unit: String,
    },
    /// A unit repeated or after a smaller one (`"30m1h"`, `"1h1h"`, `"1m1min"`).
    #[error("{unit:?} after {previous:?}: each unit at most once, largest first")]
    OutOfOrder {
        /// The unit out of place.
        unit: String,
        /// The unit before it.
        previous: String,
    },
    /// Longer than [`Duration::MAX`].
    #[error("longer than the longest duration, {}", Duration::MAX)]
    Overflow,
    /// A leading `-` where durations may not be negative.
    #[error("negative durations are not allowed here")]
    Negative,
}

fn expected_number(after: &str, found: &Option<char>) -> String {
    match (after, *found) {
        ("", Some(c)) => format!("it starts with {c:?}, not a number"),
        (_, Some(c)) => format!("expected a number after {after:?}, found {c:?}"),
        (_, None) => format!("expected a number after {after:?}"),
    }
}

fn expected_unit(number: &str, found: &char) -> String {
    let found = *found;
    if found == '.' || found == ',' {
        format!("{found:?} after {number}: fractions are not allowed, combine whole units instead, e.g. \"1h30m\"")
    } else {
        format!("expected a unit after {number}, found {found:?}")
    }
}

fn parse(text: &str, allow_negative: bool) -> Result<Duration, DurationError> {
    let fail = |kind| {
        Err(DurationError {
            text: text.to_owned(),
            kind,
        })
    };
    if text.is_empty() {
        return fail(DurationErrorKind::Empty);
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, text),
    };
    if negative && !allow_negative {
        return fail(DurationErrorKind::Negative);
    }
    let mut rest = body;
    let mut total: i64 = 0;
    let mut previous: Option<(&str, i64)> = None;
    loop {
        let digits_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits_len == 0 {
            return fail(DurationErrorKind::ExpectedNumber {
                after: text[..text.len() - rest.len()].to_owned(),
                found: rest.chars().next(),
            });
        }
        let (digits, after) = rest.split_at(digits_len);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        if unit_len == 0 {
            return fail(match after.chars().next() {
                None => DurationErrorKind::MissingUnit {
                    number: digits.to_owned(),
                },
                Some(found) => DurationErrorKind::ExpectedUnit {
                    number: digits.to_owned(),
                    found,
                },
            });
        }
        let (unit, next) = after.split_at(unit_len);
        let Some(&(unit, len)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return fail(DurationErrorKind::UnknownUnit { unit: unit.to_owned() });
        };
        if let Some((previous, previous_len)) = previous
            && len >= previous_len
        {
            return fail(DurationErrorKind::OutOfOrder {
                unit: unit.to_owned(),
                previous: previous.to_owned(),
            });
        }
        // Digits alone fail to parse only when they overflow.
        let sum = digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(len))
            .and_then(|part| part.checked_add(total))
            .filter(|sum| *sum <= Duration::MAX.millis);
        let Some(sum) = sum else {
            return fail(DurationErrorKind::Overflow);
        };
        total = sum;
        previous = Some((unit, len));
        rest = next;
        if rest.is_empty() {
            break;
        }
    }
    Ok(Duration {
        millis: if negative { -total } else { total },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(text: &str) -> Result<i64, DurationError> {
        Duration::parse(text).map(Duration::as_millis)
    }

    fn kind(text: &str) -> DurationErrorKind {
        Duration::parse(text).expect_err(text).kind().clone()
    }

    #[test]
    fn every_unit_alone() {
        assert_eq!(millis("500ms"), Ok(500));
        assert_eq!(millis("5s"), Ok(5_000));
        assert_eq!(millis("1m"), Ok(60_000));
        assert_eq!(millis("15min"), Ok(900_000));
        assert_eq!(millis("1h"), Ok(3_600_000));
        assert_eq!(millis("2d"), Ok(172_800_000));
        assert_eq!(millis("007s"), Ok(7_000));
        // What the host's old parser was tested with.
        assert_eq!(
            Duration::parse("250ms").map(Duration::to_std),
            Ok(Some(std::time::Duration::from_millis(250)))
        );
        assert_eq!(
            Duration::parse("15m").map(Duration::to_std),
            Ok(Some(std::time::Duration::from_secs(900)))
        );
    }

    #[test]
    fn parts_add_up_largest_unit_first() {
        assert_eq!(millis("1h30m"), Ok(5_400_000));
        assert_eq!(millis("1h30min"), Ok(5_400_000));
        assert_eq!(millis("1d12h"), Ok(129_600_000));
        assert_eq!(millis("1m30s250ms"), Ok(90_250));
        assert_eq!(millis("2h5ms"), Ok(7_200_005));
        assert_eq!(millis("1d1h1m1s1ms"), Ok(90_061_001));
        // A part may exceed the next unit up.
        assert_eq!(millis("90m"), Ok(5_400_000));
        assert_eq!(millis("1h90m"), Ok(9_000_000));
    }

    #[test]
    fn zero_in_any_unit() {
        for zero in ["0s", "0ms", "0d", "0h0m", "00m", "0d0h0m0s0ms"] {
            assert_eq!(Duration::parse(zero), Ok(Duration::ZERO), "{zero}");
        }
        assert_eq!(Duration::parse_signed("-0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn a_sign_only_where_negative_durations_are_allowed() {
        assert_eq!(
            Duration::parse_signed("-8h").map(Duration::as_micros),
            Ok(-28_800_000_000)
        );
        assert_eq!(
            Duration::parse_signed("-1h30m").map(Duration::as_millis),
            Ok(-5_400_000)
        );
        assert_eq!(Duration::parse_signed("30s").map(Duration::as_millis), Ok(30_000));
        assert_eq!(kind("-1h"), DurationErrorKind::Negative);
        assert_eq!(Duration::parse_signed("-8h").map(Duration::to_std), Ok(None));
        for bad in ["+1s", "--1s", "-", "- 1s", "1s-1ms"] {
            assert!(Duration::parse_signed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        // i64::MAX microseconds is 106751991d 4h 0m 54s 775ms 807µs.
        assert_eq!(Duration::parse("106751991d4h54s775ms"), Ok(Duration::MAX));
        assert_eq!(Duration::parse_signed("-106751991d4h54s775ms"), Ok(Duration::MIN));
        assert_eq!(Duration::MAX.as_micros(), i64::MAX - 807);
        assert_eq!(Duration::MIN.as_micros(), -(i64::MAX - 807));
        for big in [
            "106751991d4h54s776ms",
            "106751991d5h",
            "106751991d23h",
            "106751992d",
            "9223372036854775807ms",
            "9223372036854775808ms",
            "99999999999999999999h",
            "99999999999999999d",
        ] {
            assert_eq!(kind(big), DurationErrorKind::Overflow, "{big}");
        }
        let message = Duration::parse("99999999999999999d").expect_err("overflow").to_string();
        assert!(
            message.contains("longer than the longest duration, 106751991d4h54s775ms"),
            "{message}"
        );
    }

    #[test]
    fn bad_input_says_what_is_wrong_and_what_is_expected() {
        let cases: &[(&str, &str)] = &[
            ("", "it is empty"),
            ("30", "30 has no unit"),
            ("1h30", "30 has no unit"),
            ("s", "it starts with 's', not a number"),
            ("h1", "it starts with 'h', not a number"),
            ("fifteen minutes", "it starts with 'f', not a number"),
            (" 1h", "it starts with ' ', not a number"),
            ("+1h", "it starts with '+', not a number"),
            ("1h ", "expected a number after \"1h\", found ' '"),
            ("1h-5m", "expected a number after \"1h\", found '-'"),
            ("1 h", "expected a unit after 1, found ' '"),
            ("10 parsecs", "expected a unit after 10, found ' '"),
            (
                "1.5h",
                "'.' after 1: fractions are not allowed, combine whole units instead, e.g. \"1h30m\"",
            ),
            ("1w", "unknown unit \"w\""),
            ("1H", "unknown unit \"H\""),
            ("1sec", "unknown unit \"sec\""),
            ("10parsecs", "unknown unit \"parsecs\""),
            ("1µs", "expected a unit after 1, found 'µ'"),
            ("30m1h", "\"h\" after \"m\": each unit at most once, largest first"),
            ("1h1h", "\"h\" after \"h\""),
            ("1m1min", "\"min\" after \"m\""),
            ("1s1ms1s", "\"s\" after \"ms\""),
            ("-1h", "negative durations are not allowed here"),
        ];
        for (bad, reason) in cases {
            let err = Duration::parse(bad).expect_err(bad);
            assert_eq!(err.text(), *bad);
            let message = err.to_string();
            assert!(message.starts_with(&format!("invalid duration {bad:?}: ")), "{message}");
            assert!(message.contains(reason), "{bad:?}: {message}");
            assert!(
                message.ends_with("expected an integer followed by a unit (d, h, m, s or ms), or several such parts largest first, e.g. \"500ms\", \"30s\" or \"1h30m\""),
                "{message}"
            );
        }
        assert_eq!(
            Duration::parse_signed("-").expect_err("sign alone").kind().to_string(),
            "expected a number after \"-\""
        );
    }

    #[test]
    fn display_writes_the_canonical_form_and_reads_back() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ms"),
            (500, "500ms"),
            (1_500, "1s500ms"),
            (10_000, "10s"),
            (90_000, "1m30s"),
            (900_000, "15m"),
            (3_600_000, "1h"),
            (5_400_000, "1h30m"),
            (86_400_000, "1d"),
            (7 * 86_400_000, "7d"),
            (65_535_000, "18h12m15s"),
            (90_061_001, "1d1h1m1s1ms"),
            (-28_800_000, "-8h"),
            (-1_500, "-1s500ms"),
        ];
        for &(ms, text) in cases {
            let d = Duration::from_millis(ms).expect("in range");
            assert_eq!(d.to_string(), text);
            assert_eq!(Duration::parse_signed(text), Ok(d), "{text}");
        }
        assert_eq!(Duration::MAX.to_string(), "106751991d4h54s775ms");
        assert_eq!(Duration::MIN.to_string(), "-106751991d4h54s775ms");
        // Non-canonical spellings read as the same value.
        assert_eq!(Duration::parse("90m").map(|d| d.to_string()), Ok("1h30m".to_owned()));
        assert_eq!(Duration::parse("15min").map(|d| d.to_string()), Ok("15m".to_owned()));
    }

    #[test]
    fn conversions_keep_the_range() {
        assert_eq!(Duration::from_millis(i64::MAX / 1_000), Some(Duration::MAX));
        assert_eq!(Duration::from_millis(i64::MAX / 1_000 + 1), None);
        assert_eq!(Duration::from_millis(-(i64::MAX / 1_000) - 1), None);
        assert_eq!(Duration::from_millis(i64::MIN), None);
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(Duration::from_std(day).map(|d| d.to_string()), Some("1d".to_owned()));
        assert_eq!(Duration::from_std(std::time::Duration::from_micros(1_500)), None);
        assert_eq!(Duration::from_std(std::time::Duration::MAX), None);
        assert_eq!(Duration::MAX.to_std().and_then(Duration::from_std), Some(Duration::MAX));
        assert_eq!("2d".parse::<Duration>().map(Duration::as_millis), Ok(172_800_000));
        assert!("-2d".parse::<Duration>().is_err());
    }
}
