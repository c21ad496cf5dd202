//! The anomaly transform's `config` table as a typed serde struct.
//!
//! Only shapes are checked here (key names, enum spellings, number types, duration syntax);
//! ranges, columns and options that do not belong to the chosen method are checked by
//! [`crate::plan`], each error at the key path it is about.

use serde::Deserialize;

use crate::duration::Duration;

/// Default EWMA smoothing factor.
pub const DEFAULT_ALPHA: f64 = 0.1;
/// Default z-score window length.
pub const DEFAULT_WINDOW: u32 = 60;
/// Default score from which a value is an anomaly.
pub const DEFAULT_THRESHOLD: f64 = 4.0;
/// Default number of values per key that are never flagged.
pub const DEFAULT_WARMUP: u32 = 10;
/// Default number of anomalies in a row taken as a level shift.
pub const DEFAULT_RESET_AFTER: u32 = 5;
/// Default bound on the number of keys held.
pub const DEFAULT_MAX_KEYS: u32 = 100_000;

/// `[transform.config]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The column whose values name the series (string or integer); absent for one global
    /// series.
    #[serde(default)]
    pub key: Option<String>,
    /// The numeric column that is scored.
    pub value: String,
    /// How the expected value and spread are estimated.
    #[serde(default)]
    pub method: Method,
    /// EWMA smoothing factor, `0 < alpha ≤ 1` (`ewma` only).
    #[serde(default)]
    pub alpha: Option<f64>,
    /// Number of past values the z-score looks at, ≥ 2 (`zscore` only).
    #[serde(default)]
    pub window: Option<u32>,
    /// A value whose score reaches this is an anomaly (> 0).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// The first `warmup` values of each key are never flagged.
    #[serde(default = "default_warmup")]
    pub warmup: u32,
    /// Where flagged rows go.
    #[serde(default)]
    pub route: Route,
    /// Whether an anomalous value still updates its key's statistics.
    #[serde(default)]
    pub update_on_anomaly: bool,
    /// With `update_on_anomaly = false`: this many anomalies in a row of one key are a level
    /// shift, and the key starts afresh from the last of them; 0 = never (default 5).
    #[serde(default)]
    pub reset_after: Option<u32>,
    /// How many keys are held; past it the least recently seen key is forgotten (≥ 1).
    #[serde(default = "default_max_keys")]
    pub max_keys: u32,
    /// The timestamp column giving each row's event time (required by `expire_after`).
    #[serde(default)]
    pub time_column: Option<String>,
    /// A key whose latest event time is more than this behind the watermark is forgotten.
    #[serde(default)]
    pub expire_after: Option<Duration>,
}

fn default_threshold() -> f64 {
    DEFAULT_THRESHOLD
}

fn default_warmup() -> u32 {
    DEFAULT_WARMUP
}

fn default_max_keys() -> u32 {
    DEFAULT_MAX_KEYS
}

/// The estimators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Exponentially weighted mean and variance.
    #[default]
    Ewma,
    /// Mean and standard deviation of the last `window` values.
    Zscore,
}

impl Method {
    /// The spelling in config files.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ewma => "ewma",
            Method::Zscore => "zscore",
        }
    }
}

/// Where flagged rows go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Every row goes to `main`, with the flag and score columns.
    #[default]
    Flag,
    /// Flagged rows go to the `anomalies` output, the others to `main`.
    Split,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_value_is_required_and_the_rest_defaults() {
        let cfg: Config = serde_json::from_str(r#"{"value":"temperature"}"#).unwrap();
        assert_eq!(cfg.key, None);
        assert_eq!(cfg.method, Method::Ewma);
        assert_eq!((cfg.alpha, cfg.window), (None, None));
        assert_eq!(cfg.threshold, 4.0);
        assert_eq!(cfg.warmup, 10);
        assert_eq!(cfg.route, Route::Flag);
        assert!(!cfg.update_on_anomaly);
        assert_eq!(cfg.reset_after, None);
        assert_eq!(cfg.max_keys, 100_000);
        assert_eq!((cfg.time_column, cfg.expire_after), (None, None));
    }

    #[test]
    fn the_documented_example_parses() {
        let cfg: Config = serde_json::from_str(
            r#"{"key":"device_id","value":"temperature","method":"zscore","window":60,"threshold":4,
                "warmup":10,"route":"split","update_on_anomaly":true,"max_keys":5,
                "time_column":"event_time","expire_after":"1h30m"}"#,
        )
        .unwrap();
        assert_eq!(cfg.key.as_deref(), Some("device_id"));
        assert_eq!(cfg.method, Method::Zscore);
        assert_eq!(cfg.window, Some(60));
        assert_eq!(cfg.threshold, 4.0, "an integer threshold is accepted");
        assert_eq!(cfg.route, Route::Split);
        assert!(cfg.update_on_anomaly);
        assert_eq!(cfg.max_keys, 5);
        assert_eq!(cfg.time_column.as_deref(), Some("event_time"));
        assert_eq!(cfg.expire_after.map(|d| d.micros), Some(5_400_000_000));
    }

    #[test]
    fn misspelt_keys_and_unknown_spellings_are_refused() {
        let parse = |json: &str| {
            serde_json::from_str::<Config>(json)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert!(parse(r#"{"value":"v","treshold":3}"#).contains("unknown field `treshold`"));
        assert!(parse(r#"{"value":"v","method":"mad"}"#).contains("unknown variant `mad`"));
        assert!(parse(r#"{"value":"v","route":"drop"}"#).contains("unknown variant `drop`"));
        assert!(parse(r#"{"value":"v","warmup":-1}"#).contains("invalid value"));
        assert!(parse(r#"{"key":"k"}"#).contains("missing field `value`"));
        assert!(parse(r#"{"value":"v","expire_after":"soon"}"#).contains("invalid duration \"soon\""));
        assert!(parse(r#"{"value":"v","expire_after":3600}"#).contains("invalid type"));
    }
}
