//! Durations in config files: one or more `<integer><unit>` parts, units `d`, `h`, `m`,
//! `s` and `ms`, each at most once and largest first (`"500ms"`, `"30s"`, `"1h30m"`,
//! `"2d"`), held in microseconds. No sign, spaces or fractions. Whether a duration may be
//! zero is for [`crate::plan`] to say.

use serde::Deserialize;

/// A length of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Duration {
    /// Length in microseconds (≥ 0).
    pub micros: i64,
}

/// The units, largest first, with their length in microseconds.
const UNITS: [(&str, i64); 5] = [
    ("d", 86_400_000_000),
    ("h", 3_600_000_000),
    ("m", 60_000_000),
    ("s", 1_000_000),
    ("ms", 1_000),
];

impl TryFrom<String> for Duration {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        parse(&text).map(|micros| Duration { micros }).ok_or_else(|| {
            format!(
                "invalid duration {text:?}: expected an integer followed by d, h, m, s or ms, \
                 or several such parts largest first, e.g. \"30s\" or \"1h30m\""
            )
        })
    }
}

fn parse(text: &str) -> Option<i64> {
    let mut rest = text;
    let mut total: i64 = 0;
    // Units still allowed: those after the last one used.
    let mut allowed = &UNITS[..];
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits_end == 0 {
            return None;
        }
        let (digits, after) = rest.split_at(digits_end);
        // `ms` before `m`, so "5ms" is not five minutes followed by garbage.
        let unit_len = if after.starts_with("ms") { 2 } else { 1 };
        let unit = after.get(..unit_len)?;
        let at = allowed.iter().position(|(name, _)| *name == unit)?;
        let amount = digits.parse::<i64>().ok()?.checked_mul(allowed[at].1)?;
        total = total.checked_add(amount)?;
        allowed = &allowed[at + 1..];
        rest = &after[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> Result<i64, String> {
        Duration::try_from(text.to_owned()).map(|d| d.micros)
    }

    #[test]
    fn single_units() {
        assert_eq!(micros("500ms"), Ok(500_000));
        assert_eq!(micros("30s"), Ok(30_000_000));
        assert_eq!(micros("5m"), Ok(300_000_000));
        assert_eq!(micros("1h"), Ok(3_600_000_000));
        assert_eq!(micros("2d"), Ok(172_800_000_000));
        assert_eq!(micros("0s"), Ok(0));
        assert_eq!(micros("007s"), Ok(7_000_000));
    }

    #[test]
    fn combinations_add_up_largest_unit_first() {
        assert_eq!(micros("1h30m"), Ok(5_400_000_000));
        assert_eq!(micros("1d12h"), Ok(129_600_000_000));
        assert_eq!(micros("1m30s250ms"), Ok(90_250_000));
        assert_eq!(micros("2h5ms"), Ok(7_200_005_000));
    }

    #[test]
    fn malformed_durations_say_what_is_expected() {
        for bad in [
            "",
            "30",
            "s",
            "h1",
            "1.5h",
            "1 h",
            " 1h",
            "1h ",
            "-1h",
            "+1h",
            "1w",
            "1H",
            "1sec",
            "30m1h",
            "1h1h",
            "1s1ms1s",
            "1h30",
            "99999999999999999d",
            "106751991d23h",
        ] {
            let err = micros(bad).unwrap_err();
            assert!(
                err.contains("expected an integer followed by d, h, m, s or ms"),
                "{bad}: {err}"
            );
        }
    }
}
