//! One input batch into the open windows.
//!
//! Each row's event time is read in microseconds; rows without one, rows that are late
//! (`time + allowed_lateness ≤ watermark`, FL-09) and rows whose windows cannot be
//! represented are set aside with their reason. The other rows are bucketed by (window,
//! key), each batch's distinct keys numbered once (see [`number_keys`]), and each bucket updates its group's
//! accumulators in row order. Session windows take rows one at a time, in row order, as
//! each may merge sessions.

use std::ops::Range;

use sluice_sdk::arrow::array::{Array, AsArray, RecordBatch};
use sluice_sdk::arrow::compute::cast;
use sluice_sdk::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use sluice_sdk::arrow::error::ArrowError;

use crate::accumulate::Acc;
use crate::key;
use crate::plan::Plan;
use crate::store::{FixedMap, Group, Store};
use crate::value::Column;
use crate::window::{Bounds, Windowing};

/// Reason for a row whose event time is null.
pub const NULL_TIME: &str = "null event time";
/// Reason for a row that arrived after its windows were complete (FL-09).
pub const LATE: &str = "late";
/// Reason for a row whose event time or windows do not fit in i64 microseconds.
pub const OUT_OF_RANGE: &str = "event time out of range";

/// A window and a batch-local key id, with the rows (position, event time) that fall in it.
type Bucket = ((Bounds, u32), Vec<(u32, i64)>);

/// Rows of a batch that were not taken, by position, with their reasons.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SetAside {
    pub rows: Vec<u32>,
    pub reasons: Vec<&'static str>,
}

/// Add the rows of `batch` to `store`, given the current `watermark`.
pub fn ingest(plan: &Plan, store: &mut Store, watermark: i64, batch: &RecordBatch) -> Result<SetAside, ArrowError> {
    // A timestamp casts to its raw int64 value; int64 epoch millis is already one.
    let raw = cast(batch.column(plan.time.index), &DataType::Int64)?;
    let raw = raw.as_primitive::<Int64Type>();
    let mut aside = SetAside::default();
    let mut windows: Vec<Bounds> = Vec::new();
    // Each taken row, the range of its windows in `windows`, and its event time.
    let mut taken: Vec<(u32, Range<usize>, i64)> = Vec::with_capacity(batch.num_rows());
    // Tumbling windows tile the time line, so a time inside the window of the row before
    // is in that window: most rows are assigned without a division.
    let tumbling = matches!(plan.windowing, Windowing::Tumbling { .. });
    let mut recent: Option<Bounds> = None;
    for row in 0..batch.num_rows() {
        let first = windows.len();
        let time = if raw.is_null(row) {
            Err(NULL_TIME)
        } else {
            to_micros(raw.value(row), plan.time.unit).ok_or(OUT_OF_RANGE)
        };
        let reason = match time {
            Err(reason) => reason,
            Ok(t) if t.saturating_add(plan.lateness) <= watermark => LATE,
            Ok(t) if let Some(bounds) = recent.filter(|b| b.start <= t && t < b.end) => {
                windows.push(bounds);
                taken.push((row as u32, first..first + 1, t));
                continue;
            }
            Ok(t) if !plan.windowing.assign(t, &mut windows) => OUT_OF_RANGE,
            Ok(t) => {
                if tumbling {
                    recent = windows.last().copied();
                }
                taken.push((row as u32, first..windows.len(), t));
                continue;
            }
        };
        aside.rows.push(row as u32);
        aside.reasons.push(reason);
    }
    if taken.is_empty() {
        return Ok(aside);
    }

    let key_columns = plan
        .keys
        .iter()
        .map(|k| Column::new(batch.column(k.index), k.kind))
        .collect::<Result<Vec<_>, _>>()?;
    let inputs = plan
        .aggregates
        .iter()
        .map(|a| {
            a.input
                .map(|(index, kind)| Column::new(batch.column(index), kind))
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let new = || -> Vec<Acc> {
        plan.aggregates
            .iter()
            .map(|a| Acc::new(a.func, a.input.map(|(_, k)| k)))
            .collect()
    };

    let (keys, key_of) = number_keys(&key_columns, taken.iter().map(|&(row, _, _)| row as usize));
    if let Windowing::Session { .. } = plan.windowing {
        for ((row, range, t), key) in taken.into_iter().zip(key_of) {
            let group = store.session(&keys[key as usize], windows[range.start], new);
            update(group, &inputs, row as usize, t);
        }
        return Ok(aside);
    }
    // Rows by (window, key). A key's rows mostly fall in the window of its previous row, so
    // each key remembers its last bucket and the map is asked only when the window changes.
    let mut index: FixedMap<(Bounds, u32), usize> = FixedMap::default();
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut last: Vec<Option<(Bounds, usize)>> = vec![None; keys.len()];
    for ((row, range, t), key) in taken.into_iter().zip(key_of) {
        for bounds in &windows[range] {
            let at = match last[key as usize] {
                Some((b, at)) if b == *bounds => at,
                _ => {
                    let at = *index.entry((*bounds, key)).or_insert_with(|| {
                        buckets.push(((*bounds, key), Vec::new()));
                        buckets.len() - 1
                    });
                    last[key as usize] = Some((*bounds, at));
                    at
                }
            };
            buckets[at].1.push((row, t));
        }
    }
    for ((bounds, key), rows) in buckets {
        let group = store.group(bounds, &keys[key as usize], new);
        for (acc, input) in group.accs.iter_mut().zip(&inputs) {
            acc.update_rows(input.as_ref(), &rows);
        }
    }
    Ok(aside)
}

/// The distinct keys of `rows` (encoded, see [`key`]) in order of first appearance, and each
/// row's index into them. A single string or integer key is looked up by its value, so only
/// a batch's new keys are encoded; any other key is encoded once per row.
fn number_keys(columns: &[Column], rows: impl Iterator<Item = usize>) -> (Vec<Vec<u8>>, Vec<u32>) {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut key_of: Vec<u32> = Vec::with_capacity(rows.size_hint().0);
    let mut new_key = |row: usize| {
        let mut encoded = Vec::new();
        key::encode(columns, row, &mut encoded);
        keys.push(encoded);
        keys.len() as u32 - 1
    };
    match columns {
        [Column::Str(array)] => {
            let mut ids: FixedMap<&str, u32> = FixedMap::default();
            let mut null = None;
            for row in rows {
                let id = if array.is_null(row) {
                    *null.get_or_insert_with(|| new_key(row))
                } else {
                    *ids.entry(array.value(row)).or_insert_with(|| new_key(row))
                };
                key_of.push(id);
            }
        }
        [Column::Int(array)] => {
            let mut ids: FixedMap<i64, u32> = FixedMap::default();
            let mut null = None;
            for row in rows {
                let id = if array.is_null(row) {
                    *null.get_or_insert_with(|| new_key(row))
                } else {
                    *ids.entry(array.value(row)).or_insert_with(|| new_key(row))
                };
                key_of.push(id);
            }
        }
        _ => {
            let mut ids: FixedMap<Vec<u8>, u32> = FixedMap::default();
            let mut buf = Vec::new();
            for row in rows {
                buf.clear();
                key::encode(columns, row, &mut buf);
                let id = match ids.get(buf.as_slice()) {
                    Some(&id) => id,
                    None => {
                        let id = new_key(row);
                        ids.insert(buf.clone(), id);
                        id
                    }
                };
                key_of.push(id);
            }
        }
    }
    (keys, key_of)
}

fn update(group: &mut Group, inputs: &[Option<Column>], row: usize, time: i64) {
    for (acc, input) in group.accs.iter_mut().zip(inputs) {
        match input {
            None => acc.update_row(),
            Some(column) => acc.update(column.get(row), time),
        }
    }
}

/// `value` in `unit` as microseconds; nanoseconds round down (toward the past).
pub fn to_micros(value: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => value.checked_mul(1_000_000),
        TimeUnit::Millisecond => value.checked_mul(1_000),
        TimeUnit::Microsecond => Some(value),
        TimeUnit::Nanosecond => Some(value.div_euclid(1_000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys numbered by encoding every row: what `number_keys` must agree with.
    fn numbered_by_encoding(columns: &[Column], rows: &[usize]) -> (Vec<Vec<u8>>, Vec<u32>) {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let ids = rows
            .iter()
            .map(|&row| {
                let mut k = Vec::new();
                key::encode(columns, row, &mut k);
                match keys.iter().position(|e| *e == k) {
                    Some(i) => i as u32,
                    None => {
                        keys.push(k);
                        keys.len() as u32 - 1
                    }
                }
            })
            .collect();
        (keys, ids)
    }

    #[test]
    fn single_keys_are_numbered_like_encoded_ones() {
        use std::sync::Arc;

        use sluice_sdk::arrow::array::{ArrayRef, Int32Array, StringArray};

        use crate::value::Kind;

        let strings: ArrayRef = Arc::new(StringArray::from(vec![
            Some("b"),
            None,
            Some("a\0"),
            Some("a"),
            Some("b"),
            None,
            Some(""),
            Some("a"),
        ]));
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![
            Some(3),
            Some(-1),
            None,
            Some(3),
            Some(i32::MIN),
            None,
            Some(-1),
            Some(0),
        ]));
        // Rows out of order and repeated, as taken rows may skip some.
        let rows = [7, 0, 1, 2, 3, 4, 5, 6, 0, 5];
        let shapes: [&[(&ArrayRef, Kind)]; 3] = [
            &[(&strings, Kind::Str)],
            &[(&ints, Kind::Int)],
            &[(&strings, Kind::Str), (&ints, Kind::Int)],
        ];
        for shape in shapes {
            let columns: Vec<Column> = shape.iter().map(|(a, k)| Column::new(a, *k).unwrap()).collect();
            assert_eq!(
                number_keys(&columns, rows.iter().copied()),
                numbered_by_encoding(&columns, &rows),
                "{shape:?}"
            );
        }
    }

    #[test]
    fn every_unit_becomes_microseconds_rounding_toward_the_past() {
        assert_eq!(to_micros(2, TimeUnit::Second), Some(2_000_000));
        assert_eq!(to_micros(-2, TimeUnit::Millisecond), Some(-2_000));
        assert_eq!(to_micros(7, TimeUnit::Microsecond), Some(7));
        assert_eq!(to_micros(1_999, TimeUnit::Nanosecond), Some(1));
        assert_eq!(to_micros(-1, TimeUnit::Nanosecond), Some(-1));
        assert_eq!(to_micros(i64::MAX / 1_000, TimeUnit::Second), None);
    }
}
