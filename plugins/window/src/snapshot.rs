//! Snapshot format 1: the watermark and every open group, as JSON.
//!
//! ```json
//! {"watermark": 4999999,
//!  "windows": [{"start": 0, "end": 5000000,
//!               "groups": [{"key": "0161620000", "dirty": false, "accs": [{"Count": 2}]}]}]}
//! ```
//!
//! Windows come in firing order and groups in key order, so equal states give equal bytes.
//! Keys are the hex of their encoding ([`crate::key`]); floats inside accumulators are
//! their IEEE bits. Restoring checks every key and accumulator against the current config:
//! a snapshot taken under other `group_by` or `aggregates` is refused, not misread.

use serde::{Deserialize, Serialize};

use crate::accumulate::Acc;
use crate::key;
use crate::plan::Plan;
use crate::store::{Group, Store};
use crate::value::Kind;
use crate::window::{Bounds, Windowing};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    watermark: i64,
    windows: Vec<WindowState>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowState {
    start: i64,
    end: i64,
    groups: Vec<GroupState>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupState {
    key: String,
    dirty: bool,
    accs: Vec<Acc>,
}

/// The bytes of `store` at `watermark`.
pub fn write(store: &Store, watermark: i64) -> Result<Vec<u8>, String> {
    let windows = store
        .windows()
        .map(|(bounds, groups)| {
            let mut groups: Vec<GroupState> = groups
                .iter()
                .map(|(key, group)| GroupState {
                    key: hex(key),
                    dirty: group.dirty,
                    accs: group.accs.clone(),
                })
                .collect();
            groups.sort_by(|a, b| a.key.cmp(&b.key));
            WindowState {
                start: bounds.start,
                end: bounds.end,
                groups,
            }
        })
        .collect();
    serde_json::to_vec(&State { watermark, windows }).map_err(|e| e.to_string())
}

/// The store and watermark in `data`, checked against `plan`.
pub fn read(plan: &Plan, data: &[u8]) -> Result<(Store, i64), String> {
    let state: State = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let kinds: Vec<Kind> = plan.keys.iter().map(|k| k.kind).collect();
    let session = matches!(plan.windowing, Windowing::Session { .. });
    let mut store = Store::default();
    for window in state.windows {
        if window.start >= window.end {
            return Err(format!("empty window [{}, {})", window.start, window.end));
        }
        let bounds = Bounds::new(window.start, window.end);
        for group in window.groups {
            let key = unhex(&group.key).ok_or_else(|| format!("group key {:?} is not hex", group.key))?;
            if key::decode(&key, &kinds).is_none() {
                return Err(format!(
                    "group key {:?} does not match the `group_by` columns",
                    group.key
                ));
            }
            let fits = group.accs.len() == plan.aggregates.len()
                && group
                    .accs
                    .iter()
                    .zip(&plan.aggregates)
                    .all(|(acc, agg)| acc.fits(agg.func, agg.input.map(|(_, kind)| kind)));
            if !fits {
                return Err(format!(
                    "the accumulators of group {:?} do not match the `aggregates`",
                    group.key
                ));
            }
            let group_state = Group {
                accs: group.accs,
                dirty: group.dirty,
            };
            if !store.restore(bounds, key, group_state, session) {
                return Err(format!(
                    "group {:?} of window [{}, {}) overlaps another",
                    group.key, window.start, window.end
                ));
            }
        }
    }
    Ok((store, state.watermark))
}

/// Add the groups of another instance's snapshot `data` to `store` (see [`Store::absorb`]);
/// the later of the two watermarks.
pub fn absorb(plan: &Plan, store: &mut Store, watermark: i64, data: &[u8]) -> Result<i64, String> {
    let (other, other_watermark) = read(plan, data)?;
    store.absorb_store(&other, matches!(plan.windowing, Windowing::Session { .. }));
    Ok(watermark.max(other_watermark))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_odd_or_foreign_text() {
        assert_eq!(hex(&[0, 0xab, 0x1f]), "00ab1f");
        assert_eq!(unhex("00ab1f"), Some(vec![0, 0xab, 0x1f]));
        assert_eq!(unhex(""), Some(vec![]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é1"), None);
    }
}
