//! The window transform's `config` table as typed serde structs.
//!
//! Only shapes are checked here (key names, enum spellings, duration syntax); everything
//! that needs the input schema or relates two keys is checked by [`crate::plan`], each error
//! at the key path it is about.

use serde::Deserialize;

/// `[transform.config]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The event-time column: a timestamp (any unit, any zone) or int64 epoch milliseconds.
    pub time_column: String,
    /// How rows are assigned to windows.
    pub window: WindowConfig,
    /// Key columns; each key gets its own windows.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The aggregate columns, in output order.
    #[serde(default)]
    pub aggregates: Vec<AggregateConfig>,
    /// How long after a window fired a late row still updates it (default `0s`).
    #[serde(default)]
    pub allowed_lateness: Option<Duration>,
}

/// The `window` table. One struct for every kind, dispatched on `type` by [`crate::plan`]
/// (an internally tagged enum would lose the key paths of its errors).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// `tumbling`, `hopping` or `session`.
    #[serde(rename = "type")]
    pub kind: WindowKind,
    /// Window length (tumbling, hopping).
    #[serde(default)]
    pub size: Option<Duration>,
    /// Distance between window starts (hopping).
    #[serde(default)]
    pub slide: Option<Duration>,
    /// Inactivity that closes a session (session).
    #[serde(default)]
    pub gap: Option<Duration>,
    /// Shift of the window grid from the epoch (tumbling, hopping); may be negative.
    #[serde(default)]
    pub offset: Option<Duration>,
}

/// The kinds of window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// Fixed-size, non-overlapping windows.
    Tumbling,
    /// Fixed-size windows starting every `slide`; they overlap when `slide < size`.
    Hopping,
    /// Per-key windows that grow while rows keep arriving within `gap` of each other.
    Session,
}

/// One `aggregates` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// The aggregate function.
    #[serde(rename = "fn")]
    pub func: AggFn,
    /// The input column; optional for `count` only (which then counts rows).
    #[serde(default)]
    pub column: Option<String>,
    /// The output column name; `<fn>_<column>` (or `count`) when absent.
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

/// The aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggFn {
    /// Rows, or non-null values of `column`.
    Count,
    /// Sum of the non-null values.
    Sum,
    /// Mean of the non-null values.
    Avg,
    /// Smallest non-null value.
    Min,
    /// Greatest non-null value.
    Max,
    /// Non-null value with the earliest event time.
    First,
    /// Non-null value with the latest event time.
    Last,
}

impl AggFn {
    /// The spelling in config files.
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::Sum => "sum",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
            AggFn::First => "first",
            AggFn::Last => "last",
        }
    }
}

/// A duration in the contract's syntax ([`sluice_sdk::Duration`]: `"30s"`, `"1h30m"`, `"2d"`),
/// here with an optional sign (`"-8h"`, for `offset`), held in microseconds. Signs and zero
/// are checked by [`crate::plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Duration {
    /// Length in microseconds.
    pub micros: i64,
}

impl TryFrom<String> for Duration {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        sluice_sdk::Duration::parse_signed(&text)
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
    fn durations_take_the_contract_syntax_with_a_sign() {
        assert_eq!(micros("250ms"), Ok(250_000));
        assert_eq!(micros("30s"), Ok(30_000_000));
        assert_eq!(micros("1m"), Ok(60_000_000));
        assert_eq!(micros("2h"), Ok(7_200_000_000));
        assert_eq!(micros("1d"), Ok(86_400_000_000));
        assert_eq!(micros("1h30m"), Ok(5_400_000_000));
        assert_eq!(micros("0s"), Ok(0));
        assert_eq!(micros("-8h"), Ok(-28_800_000_000));
    }

    #[test]
    fn malformed_durations_say_what_is_expected() {
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            "10 s",
            "1w",
            "+1s",
            "--1s",
            "1S",
            "30m1h",
            "99999999999999999h",
        ] {
            let err = micros(bad).unwrap_err();
            assert!(err.starts_with(&format!("invalid duration {bad:?}: ")), "{bad}: {err}");
            assert!(
                err.contains("expected an integer followed by a unit (d, h, m, s or ms)"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_example_config_parses() {
        let cfg: Config = serde_json::from_str(
            r#"{"time_column":"event_time","window":{"type":"hopping","size":"10m","slide":"5m","offset":"-1m"},
                "group_by":["ticker"],
                "aggregates":[{"fn":"avg","column":"price","as":"avg_price"},{"fn":"count","as":"n"}],
                "allowed_lateness":"0s"}"#,
        )
        .unwrap();
        assert_eq!(cfg.window.kind, WindowKind::Hopping);
        assert_eq!(cfg.window.offset.map(|d| d.micros), Some(-60_000_000));
        assert_eq!(cfg.aggregates[0].func, AggFn::Avg);
        assert_eq!(cfg.aggregates[1].name.as_deref(), Some("n"));
    }

    #[test]
    fn misspelt_keys_and_unknown_kinds_are_refused() {
        let parse = |json: &str| {
            serde_json::from_str::<Config>(json)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let base = r#""time_column":"t","window":{"type":"tumbling","size":"1m"}"#;
        assert!(parse(&format!("{{{base},\"groupby\":[]}}")).contains("unknown field `groupby`"));
        assert!(parse(r#"{"time_column":"t","window":{"type":"tumbling","sise":"1m"}}"#).contains("unknown field"));
        assert!(parse(r#"{"time_column":"t","window":{"type":"sliding"}}"#).contains("unknown variant `sliding`"));
        assert!(parse(&format!("{{{base},\"aggregates\":[{{\"fn\":\"median\"}}]}}")).contains("unknown variant"));
    }
}
