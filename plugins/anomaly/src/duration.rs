//! `expire_after` and other durations: the contract's syntax ([`sluice_sdk::Duration`]:
//! `"500ms"`, `"30s"`, `"1h30m"`, `"2d"`, no sign), held in microseconds. Whether a duration
//! may be zero is for [`crate::plan`] to say.

use serde::Deserialize;

/// A length of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Duration {
    /// Length in microseconds (≥ 0).
    pub micros: i64,
}

impl TryFrom<String> for Duration {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        sluice_sdk::Duration::parse(&text)
            .map(|d| Duration { micros: d.as_micros() })
            .map_err(|e| e.to_string())
    }
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
            assert!(err.starts_with(&format!("invalid duration {bad:?}: ")), "{bad}: {err}");
            assert!(
                err.contains("expected an integer followed by a unit (d, h, m, s or ms)"),
                "{bad}: {err}"
            );
        }
    }
}
