//! Resolving the config against the input schema, with no data: every check `describe`
//! makes (each error at the key path it is about), producing the output schema and what
//! `process` needs.
//!
//! `main` (and `anomalies`, when split) is the input columns unchanged, then
//! `is_anomaly` (boolean, non-null) and `anomaly_score` (float64, nullable).

use std::sync::Arc;

use sluice_sdk::ConfigError;
use sluice_sdk::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::config::{Config, DEFAULT_ALPHA, DEFAULT_RESET_AFTER, DEFAULT_WINDOW, Method, Route};
use crate::detector::{Detector, Estimator};
use crate::key::KeyKind;

/// Name of the flag column.
pub const IS_ANOMALY: &str = "is_anomaly";
/// Name of the score column.
pub const ANOMALY_SCORE: &str = "anomaly_score";
/// Name of the output flagged rows go to with `route = "split"`.
pub const ANOMALIES: &str = "anomalies";

/// Longest z-score window: each key holds this many values.
pub const MAX_WINDOW: u32 = 100_000;

/// The checked config.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The schema of `main` (and of `anomalies`).
    pub output: SchemaRef,
    /// The key column's position and kind; `None` for one global series.
    pub key: Option<(usize, KeyKind)>,
    /// The value column's position.
    pub value: usize,
    pub detector: Detector,
    /// Whether flagged rows go to `anomalies`.
    pub split: bool,
    pub max_keys: usize,
    /// Forgetting keys by event time; `None` without `expire_after`.
    pub expiry: Option<Expiry>,
    /// What a snapshot must have been taken under to be restored here.
    pub identity: Identity,
}

/// Keys whose latest event time falls more than `after` behind the watermark are forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// The event-time column's position.
    pub time: usize,
    /// Its unit.
    pub unit: TimeUnit,
    /// `expire_after` in microseconds (> 0).
    pub after: i64,
}

/// The part of the config the held statistics depend on. Threshold, warm-up, alpha, route,
/// `update_on_anomaly`, `reset_after`, `max_keys`, `time_column` and `expire_after` may
/// change across a restore; these may not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// `ewma` or `zscore`.
    pub method: String,
    /// The z-score window; `None` for EWMA.
    pub window: Option<u32>,
    /// The key column's name; `None` for one global series.
    pub key: Option<String>,
    /// The key column's kind (`int`, `uint`, `str`).
    pub key_kind: Option<String>,
    /// The value column's name.
    pub value: String,
}

impl Plan {
    /// Check `cfg` against `input`.
    pub fn build(cfg: &Config, input: &Schema) -> Result<Plan, ConfigError> {
        let key = match &cfg.key {
            None => None,
            Some(name) => Some(key_column(name, input)?),
        };
        let value = value_column(&cfg.value, input)?;
        if key.is_some_and(|(index, _)| index == value) {
            return Err(ConfigError::at(
                ["value"],
                format!("column {:?} is also the `key`: score another column", cfg.value),
            ));
        }
        let estimator = estimator(cfg)?;
        if !(cfg.threshold.is_finite() && cfg.threshold > 0.0) {
            return Err(ConfigError::at(
                ["threshold"],
                format!("must be a positive number, got {}", cfg.threshold),
            ));
        }
        let reset_after = match (cfg.update_on_anomaly, cfg.reset_after) {
            (true, Some(_)) => {
                return Err(ConfigError::at(
                    ["reset_after"],
                    "applies only with `update_on_anomaly = false`: anomalies that update the statistics cannot freeze them",
                ));
            }
            (true, None) => 0,
            (false, n) => n.unwrap_or(DEFAULT_RESET_AFTER),
        };
        if cfg.max_keys == 0 {
            return Err(ConfigError::at(["max_keys"], "must be at least 1"));
        }
        let expiry = expiry(cfg, input)?;
        for name in [IS_ANOMALY, ANOMALY_SCORE] {
            if input.index_of(name).is_ok() {
                return Err(ConfigError::whole(format!(
                    "the input already has a column {name:?}, which this transform adds; rename or drop it upstream"
                )));
            }
        }

        let mut fields: Vec<Arc<Field>> = input.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(IS_ANOMALY, DataType::Boolean, false)));
        fields.push(Arc::new(Field::new(ANOMALY_SCORE, DataType::Float64, true)));
        let identity = Identity {
            method: cfg.method.name().to_owned(),
            window: match estimator {
                Estimator::ZScore { .. } => Some(cfg.window.unwrap_or(DEFAULT_WINDOW)),
                Estimator::Ewma { .. } => None,
            },
            key: cfg.key.clone(),
            key_kind: key.map(|(_, kind)| kind.name().to_owned()),
            value: cfg.value.clone(),
        };
        Ok(Plan {
            output: Arc::new(Schema::new(fields)),
            key,
            value,
            detector: Detector {
                estimator,
                threshold: cfg.threshold,
                warmup: u64::from(cfg.warmup),
                update_on_anomaly: cfg.update_on_anomaly,
                reset_after,
            },
            split: cfg.route == Route::Split,
            max_keys: cfg.max_keys as usize,
            expiry,
            identity,
        })
    }
}

fn key_column(name: &str, input: &Schema) -> Result<(usize, KeyKind), ConfigError> {
    let index = find(input, name).map_err(|m| ConfigError::at(["key"], m))?;
    let data_type = input.field(index).data_type();
    let kind = KeyKind::of(data_type).ok_or_else(|| {
        ConfigError::at(
            ["key"],
            format!("cannot key by column {name:?} of type {data_type}: expected a string or integer column"),
        )
    })?;
    Ok((index, kind))
}

fn value_column(name: &str, input: &Schema) -> Result<usize, ConfigError> {
    let index = find(input, name).map_err(|m| ConfigError::at(["value"], m))?;
    let data_type = input.field(index).data_type();
    if !data_type.is_integer() && !data_type.is_floating() {
        return Err(ConfigError::at(
            ["value"],
            format!("cannot score column {name:?} of type {data_type}: expected an integer or float column"),
        ));
    }
    Ok(index)
}

/// `time_column` and `expire_after` go together: one without the other is refused, as it
/// would do nothing (or could not be done).
fn expiry(cfg: &Config, input: &Schema) -> Result<Option<Expiry>, ConfigError> {
    let (name, after) = match (&cfg.time_column, cfg.expire_after) {
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            return Err(ConfigError::at(
                ["expire_after"],
                "needs `time_column`: the timestamp column giving each row's event time",
            ));
        }
        (Some(_), None) => {
            return Err(ConfigError::at(
                ["time_column"],
                "has no effect without `expire_after`: set both to forget idle keys, or neither",
            ));
        }
        (Some(name), Some(after)) => (name, after),
    };
    if after.micros <= 0 {
        return Err(ConfigError::at(["expire_after"], "must be longer than 0"));
    }
    let time = find(input, name).map_err(|m| ConfigError::at(["time_column"], m))?;
    let unit = match input.field(time).data_type() {
        DataType::Timestamp(unit, _) => *unit,
        other => {
            return Err(ConfigError::at(
                ["time_column"],
                format!("column {name:?} has type {other}: expected a timestamp column"),
            ));
        }
    };
    Ok(Some(Expiry {
        time,
        unit,
        after: after.micros,
    }))
}

/// The estimator, refusing the other method's option.
fn estimator(cfg: &Config) -> Result<Estimator, ConfigError> {
    let foreign = |key: &str, owner: Method| {
        let default = if cfg.method == Method::Ewma {
            " (the default)"
        } else {
            ""
        };
        ConfigError::at(
            [key],
            format!(
                "`{key}` belongs to method \"{}\", but the method is \"{}\"{default}",
                owner.name(),
                cfg.method.name()
            ),
        )
    };
    match cfg.method {
        Method::Ewma => {
            if cfg.window.is_some() {
                return Err(foreign("window", Method::Zscore));
            }
            let alpha = cfg.alpha.unwrap_or(DEFAULT_ALPHA);
            if !(alpha > 0.0 && alpha <= 1.0) {
                return Err(ConfigError::at(
                    ["alpha"],
                    format!("must be in (0, 1] (0 < alpha ≤ 1), got {alpha}"),
                ));
            }
            Ok(Estimator::Ewma { alpha })
        }
        Method::Zscore => {
            if cfg.alpha.is_some() {
                return Err(foreign("alpha", Method::Ewma));
            }
            let window = cfg.window.unwrap_or(DEFAULT_WINDOW);
            if !(2..=MAX_WINDOW).contains(&window) {
                return Err(ConfigError::at(
                    ["window"],
                    format!("must be between 2 and {MAX_WINDOW}, got {window}"),
                ));
            }
            Ok(Estimator::ZScore {
                window: window as usize,
            })
        }
    }
}

fn find(input: &Schema, name: &str) -> Result<usize, String> {
    input.index_of(name).map_err(|_| {
        let available: Vec<String> = input.fields().iter().map(|f| format!("{:?}", f.name())).collect();
        format!("unknown column {name:?}; available columns: {}", available.join(", "))
    })
}
