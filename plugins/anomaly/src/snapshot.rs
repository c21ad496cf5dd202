//! Snapshot format 2: what the statistics were computed under, and every series held,
//! least recently seen first, with its latest event time, as JSON.
//!
//! ```json
//! {"config": {"method": "ewma", "window": null, "key": "device_id", "key_kind": "str",
//!             "value": "temperature"},
//!  "series": [{"key": {"str": "raspberrypi-0"}, "seen": 12, "run": 0,
//!              "stats": {"ewma": {"mean": 4627730092099895296, "var": 4596373779694328218}},
//!              "last_seen": 1700000000000000}]}
//! ```
//!
//! `last_seen` is the key's latest event time in microseconds since the epoch, null when it
//! has none (always without `expire_after`). Format 1 is the same without `last_seen` and is
//! still read: its keys have no event time, so with `expire_after` they count as seen at the
//! first watermark after the restore.
//!
//! Floats are their IEEE bits, so a restored instance continues bit for bit. A z-score
//! series holds `{"rolling": {"values": [bits…], "mean": bits, "m2": bits, "since_exact": n}}`;
//! an EWMA series that has seen no value yet holds `{"ewma": null}`. The global series
//! (no `key`) and a null key are both `"key": null`. A snapshot taken under another
//! method, window, key or value column is refused; one holding more keys than `max_keys`
//! keeps the most recently seen.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::detector::{Estimator, Ewma, Moments, Rolling, Series, Stats};
use crate::key::{self, KeyValue};
use crate::plan::{Identity, Plan};
use crate::store::Store;

/// The format written.
pub const FORMAT: u32 = 2;

/// Whether `format` can be read.
pub fn reads(format: u32) -> bool {
    matches!(format, 1 | 2)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    config: Identity,
    series: Vec<SeriesState>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesState {
    key: Option<KeyValue>,
    seen: u64,
    run: u32,
    stats: StatsState,
    /// Format 2 only.
    #[serde(default)]
    last_seen: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StatsState {
    Ewma(Option<MomentsState>),
    Rolling(RollingState),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MomentsState {
    mean: u64,
    var: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollingState {
    values: Vec<u64>,
    mean: u64,
    m2: u64,
    since_exact: usize,
}

/// The bytes of `store` under `plan`.
pub fn write(plan: &Plan, store: &Store) -> Result<Vec<u8>, String> {
    let series = store
        .iter()
        .map(|(key, series, last_seen)| SeriesState {
            key: key::to_value(key),
            seen: series.seen,
            run: series.run,
            stats: match &series.stats {
                Stats::Ewma(e) => StatsState::Ewma(e.moments.map(|m| MomentsState {
                    mean: m.mean.to_bits(),
                    var: m.var.to_bits(),
                })),
                Stats::Rolling(r) => StatsState::Rolling(RollingState {
                    values: r.values.iter().map(|v| v.to_bits()).collect(),
                    mean: r.mean.to_bits(),
                    m2: r.m2.to_bits(),
                    since_exact: r.since_exact,
                }),
            },
            last_seen,
        })
        .collect();
    let state = State {
        config: plan.identity.clone(),
        series,
    };
    serde_json::to_vec(&state).map_err(|e| e.to_string())
}

/// The store in `data`, of `format` (one [`reads`] accepts), checked against `plan`.
pub fn read(plan: &Plan, format: u32, data: &[u8]) -> Result<Store, String> {
    let state: State = serde_json::from_slice(data).map_err(|e| format!("unreadable anomaly state: {e}"))?;
    if state.config != plan.identity {
        return Err(format!(
            "the snapshot was taken with {}, but the config now has {}: its statistics do not apply",
            describe(&state.config),
            describe(&plan.identity)
        ));
    }
    let kind = plan.key.map(|(_, kind)| kind);
    let mut store = Store::new(plan.max_keys, plan.expiry.map(|e| e.after));
    for s in state.series {
        if format < 2 && s.last_seen.is_some() {
            return Err(format!("key {:?}: format {format} has no `last_seen`", s.key));
        }
        let key = key::from_value(s.key.as_ref(), kind)
            .ok_or_else(|| format!("key {:?} cannot come from the key column", s.key))?;
        let stats = stats(s.stats, plan.detector.estimator).map_err(|m| format!("key {:?}: {m}", s.key))?;
        if !store.push(
            key,
            Series {
                seen: s.seen,
                run: s.run,
                stats,
            },
            s.last_seen,
        ) {
            return Err(format!("key {:?} appears twice", s.key));
        }
    }
    Ok(store)
}

/// Add the series of another instance's snapshot `data` to `store`, after those it holds
/// (least recently seen first, as read; past `max_keys` ours are forgotten first). A key
/// both hold keeps the series that has seen more values (ours on a tie), since two estimates
/// of one series cannot be combined, with the later of the two latest event times.
pub fn absorb(plan: &Plan, store: &mut Store, format: u32, data: &[u8]) -> Result<(), String> {
    let other = read(plan, format, data)?;
    for (key, series, last_seen) in other.iter() {
        let (series, last_seen) = match store.get(key) {
            Some((held, held_seen)) => {
                let kept = if held.seen >= series.seen {
                    held.clone()
                } else {
                    series.clone()
                };
                (kept, held_seen.max(last_seen))
            }
            None => (series.clone(), last_seen),
        };
        store.forget(key);
        store.push(key.clone(), series, last_seen);
    }
    Ok(())
}

/// A key as the contract's `keyed-state` text: the value as a producer writes a partition
/// key, the empty string for a null key (and for the one series of a transform without key).
pub fn key_text(key: &[u8]) -> String {
    match key::to_value(key) {
        None => String::new(),
        Some(KeyValue::Int(n)) => n.to_string(),
        Some(KeyValue::UInt(n)) => n.to_string(),
        Some(KeyValue::Str(s)) => s,
    }
}

fn stats(state: StatsState, estimator: Estimator) -> Result<Stats, String> {
    match (state, estimator) {
        (StatsState::Ewma(moments), Estimator::Ewma { .. }) => Ok(Stats::Ewma(Ewma {
            moments: moments.map(|m| Moments {
                mean: f64::from_bits(m.mean),
                var: f64::from_bits(m.var),
            }),
        })),
        (StatsState::Rolling(r), Estimator::ZScore { window }) => {
            if r.values.len() > window || r.since_exact >= window {
                return Err(format!(
                    "{} values and {} replacements do not fit a window of {window}",
                    r.values.len(),
                    r.since_exact
                ));
            }
            let values: VecDeque<f64> = r.values.into_iter().map(f64::from_bits).collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err("a window holds a value that is not finite".into());
            }
            Ok(Stats::Rolling(Rolling {
                values,
                mean: f64::from_bits(r.mean),
                m2: f64::from_bits(r.m2),
                since_exact: r.since_exact,
            }))
        }
        _ => Err("statistics of another method".into()),
    }
}

fn describe(id: &Identity) -> String {
    let method = match id.window {
        Some(window) => format!("method {:?} (window {window})", id.method),
        None => format!("method {:?}", id.method),
    };
    let key = match (&id.key, &id.key_kind) {
        (Some(key), Some(kind)) => format!("key {key:?} ({kind})"),
        (Some(key), None) => format!("key {key:?}"),
        (None, _) => "no key".to_owned(),
    };
    format!("{method}, {key}, value {:?}", id.value)
}
