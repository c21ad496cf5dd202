//! Timestamp strings to microseconds since the epoch (UTC).
//!
//! Arrow's `string_to_datetime` reads every form the README promises (RFC 3339, a space for
//! the `T`, offsets, no seconds, …) but builds its result through chrono, which is most of a
//! timestamp column's decoding. The shape devices and loggers almost always send —
//! `YYYY-MM-DD`, `T` or a space, `HH:MM:SS`, an optional fraction of up to nine digits and an
//! optional `Z` — is read here directly; any other text, and any field out of range, goes to
//! arrow, so both give the same value for every string (`tests` compares them).

use arrow::compute::kernels::cast_utils::string_to_datetime;

/// `s` as microseconds since the epoch (UTC, a fraction below a microsecond dropped toward
/// the past), or `None` when it is not a timestamp.
pub(super) fn micros(s: &str) -> Option<i64> {
    micros_on(s, &mut LastTime::default())
}

/// [`micros`], remembering the second and the day of the last timestamp of the common
/// shape: a column's timestamps mostly fall in the second (or at least on the day) of the
/// one before, whose text up to the second (or the date) then is not read again.
pub(super) fn micros_on(s: &str, last: &mut LastTime) -> Option<i64> {
    fast(s.as_bytes(), last).or_else(|| string_to_datetime(&chrono::Utc, s).ok().map(|t| t.timestamp_micros()))
}

/// The text up to the second (`YYYY-MM-DDTHH:MM:SS`, as written) of the last timestamp of
/// the common shape and its seconds since the epoch; its date text (`YYYY-MM-DD`) and days.
#[derive(Debug, Default)]
pub(super) struct LastTime {
    second: Option<([u8; 19], i64)>,
    day: Option<([u8; 10], i64)>,
}

/// The common shape (see the module's doc), or `None` to leave the text to arrow.
fn fast(b: &[u8], last: &mut LastTime) -> Option<i64> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let upto_second: [u8; 19] = b[..19].try_into().ok()?;
    let seconds = match last.second {
        Some((seen, seconds)) if seen == upto_second => seconds,
        _ => {
            let seconds = seconds_of(&upto_second, &mut last.day)?;
            last.second = Some((upto_second, seconds));
            seconds
        }
    };
    let mut rest = &b[19..];
    let mut micros = 0;
    if let [b'.', fraction @ ..] = rest {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        // Microseconds: the first six digits, padded with zeros.
        let kept = &fraction[..n.min(6)];
        micros = i64::from(digits(kept)?) * 10_i64.pow(6 - kept.len() as u32);
        rest = &fraction[n..];
    }
    if !matches!(rest, [] | [b'Z']) {
        return None;
    }
    Some(seconds * 1_000_000 + micros)
}

/// Seconds from the epoch to `YYYY-MM-DD?HH:MM:SS` (the separator already checked), if it
/// is a time of a date; the date's days come from `day` when it holds the same date.
fn seconds_of(b: &[u8; 19], day: &mut Option<([u8; 10], i64)>) -> Option<i64> {
    let date: [u8; 10] = b[..10].try_into().ok()?;
    let days = match *day {
        Some((seen, days)) if seen == date => days,
        _ => {
            let days = days_of(&date)?;
            *day = Some((date, days));
            days
        }
    };
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second))
}

/// Days from 1970-01-01 to the date `YYYY-MM-DD`, if it is one.
fn days_of(date: &[u8; 10]) -> Option<i64> {
    let year = digits(&date[0..4])? as i64;
    let month = digits(&date[5..7])?;
    let day = digits(&date[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Up to nine ASCII digits as a number.
#[inline]
fn digits(b: &[u8]) -> Option<u32> {
    b.iter()
        .try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (years 0–9999 here).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Years counted from March, so that the leap day ends a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;

    use super::*;

    fn arrow(s: &str) -> Option<i64> {
        string_to_datetime(&chrono::Utc, s).ok().map(|t| t.timestamp_micros())
    }

    #[test]
    fn the_common_shapes_read_as_arrow_reads_them() {
        for s in [
            "2026-01-05T10:00:00",
            "2026-01-05 10:00:00",
            "2026-01-05T10:00:00Z",
            "2026-01-05T10:00:00.1",
            "2026-01-05T10:00:00.000000",
            "2026-01-05T10:00:00.123456Z",
            "2026-01-05T10:00:00.123456789",
            "2026-01-05T10:00:00.999999999Z",
            "1970-01-01T00:00:00",
            "1969-12-31T23:59:59.5",
            "0001-01-01T00:00:00",
            "0000-03-01 00:00:00",
            "9999-12-31T23:59:59.999999",
            "2000-02-29T12:00:00",
            "1900-02-28T12:00:00",
            "2024-02-29 23:59:59",
        ] {
            assert!(
                fast(s.as_bytes(), &mut LastTime::default()).is_some(),
                "{s} takes the fast path"
            );
            assert_eq!(micros(s), arrow(s), "{s}");
        }
    }

    #[test]
    fn other_text_is_left_to_arrow() {
        for s in [
            "2026-01-05T10:00:00+02:00",
            "2026-01-05T10:00:00.1234567890",
            "2026-01-05T10:00:00.",
            "2026-01-05T10:00",
            "2026-01-05",
            "2026-01-05t10:00:00z",
            "2026-13-05T10:00:00",
            "2026-02-30T10:00:00",
            "1900-02-29T10:00:00",
            "2026-01-05T24:00:00",
            "2026-01-05T10:60:00",
            "2026-01-05T10:00:60",
            "2026-01-05T10:00:00ZZ",
            "2026-01-05T10:00:00 ",
            "+2026-01-05T10:00:00",
            "2026-1-05T10:00:00",
            "２０２６-01-05T10:00:00",
        ] {
            assert_eq!(
                fast(s.as_bytes(), &mut LastTime::default()),
                None,
                "{s} is left to arrow"
            );
            assert_eq!(micros(s), arrow(s), "{s}");
        }
    }

    #[test]
    fn every_day_of_four_centuries_and_every_fraction_length_agree_with_arrow() {
        // Each day from 1800 to 2200 at a time that moves with the day, with 0–9 fraction digits.
        let mut day = chrono::NaiveDate::from_ymd_opt(1800, 1, 1).unwrap();
        let mut n: u64 = 0;
        while day.year_ce().1 < 2200 {
            let digits = (n % 10) as usize;
            let fraction = if digits == 0 {
                String::new()
            } else {
                format!(".{:0>9}", n.wrapping_mul(2_654_435_761) % 1_000_000_000)[..=digits].to_string()
            };
            let sep = if n.is_multiple_of(2) { 'T' } else { ' ' };
            let zone = if n.is_multiple_of(3) { "Z" } else { "" };
            let s = format!(
                "{}{sep}{:02}:{:02}:{:02}{fraction}{zone}",
                day.format("%Y-%m-%d"),
                n % 24,
                (n * 7) % 60,
                (n * 13) % 60
            );
            assert_eq!(fast(s.as_bytes(), &mut LastTime::default()), arrow(&s), "{s}");
            day = day.succ_opt().unwrap();
            n += 1;
        }
    }

    #[test]
    fn the_remembered_second_and_day_give_what_each_timestamp_gives_alone() {
        // Runs of one second and of one day, a day change, an impossible date after a valid
        // one with the same year and month, bad times on a remembered day, a bad fraction or
        // ending on a remembered second, and arrow's shapes in between.
        let texts = [
            "2026-01-05T10:00:00.000000",
            "2026-01-05T10:00:00.010000",
            "2026-01-05T10:00:00.0100000000",
            "2026-01-05T10:00:00.",
            "2026-01-05T10:00:00+01:00",
            "2026-01-05T10:00:00Z",
            "2026-01-05 10:00:00.5",
            "2026-01-05T10:00:01.5",
            "2026-01-05T10:00:00.25",
            "2026-01-05 23:59:59",
            "2026-01-06T00:00:00Z",
            "2026-01-05T10:00:00",
            "2026-02-28T10:00:00",
            "2026-02-29T10:00:00",
            "2026-02-28T24:00:00",
            "2026-02-28T10:00:00+02:00",
            "2026-02-28T10:00:01",
            "2024-02-29T10:00:00",
            "2024-02-29T10:00:00.5",
            "2026-02-28",
            "2026-02-28T10:00:02",
        ];
        let mut last = LastTime::default();
        for s in texts {
            assert_eq!(micros_on(s, &mut last), arrow(s), "{s}");
        }
    }
}
