//! One input batch into the open windows.
//!
//! Each row's event time is read in microseconds; rows without one, rows that are late
//! (`time + allowed_lateness ≤ watermark`, FL-09) and rows whose windows cannot be
//! represented are set aside with their reason. The other rows are bucketed by (window,
//! key) in one pass, each batch's distinct keys numbered once (see [`Numbering`]), and each
//! bucket updates its group's accumulators in row order. Session windows take rows one at a
//! time, in row order, as each may merge sessions.

use sluice_sdk::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use sluice_sdk::arrow::compute::cast;
use sluice_sdk::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use sluice_sdk::arrow::error::ArrowError;
use sluice_sdk::short_key::packed;

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

impl SetAside {
    fn push(&mut self, row: usize, reason: &'static str) {
        self.rows.push(row as u32);
        self.reasons.push(reason);
    }
}

/// Add the rows of `batch` to `store`, given the current `watermark`.
pub fn ingest(plan: &Plan, store: &mut Store, watermark: i64, batch: &RecordBatch) -> Result<SetAside, ArrowError> {
    // A timestamp casts to its raw int64 value; int64 epoch millis is already one.
    let raw = cast(batch.column(plan.time.index), &DataType::Int64)?;
    let raw = raw.as_primitive::<Int64Type>();
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

    let mut aside = SetAside::default();
    let mut keys = Numbering::new(&key_columns);
    let session = matches!(plan.windowing, Windowing::Session { .. });
    // Session rows (position, window, event time, key id), merged into the store after the pass.
    let mut sessions: Vec<(u32, Bounds, i64, u32)> = Vec::new();
    // Rows by (window, key). A key's rows mostly fall in the window of its previous row, so
    // each key remembers its last bucket and the map is asked only when the window changes.
    let mut index: FixedMap<(Bounds, u32), usize> = FixedMap::default();
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut last: Vec<Option<(Bounds, usize)>> = Vec::new();
    // Tumbling windows tile the time line, so a time inside the window of the row before
    // is in that window: most rows are assigned without a division.
    let tumbling = matches!(plan.windowing, Windowing::Tumbling { .. });
    let mut recent: Option<Bounds> = None;
    let mut assigned: Vec<Bounds> = Vec::new();
    for row in 0..batch.num_rows() {
        let time = if raw.is_null(row) {
            Err(NULL_TIME)
        } else {
            to_micros(raw.value(row), plan.time.unit).ok_or(OUT_OF_RANGE)
        };
        let t = match time {
            Ok(t) if t.saturating_add(plan.lateness) <= watermark => Err(LATE),
            other => other,
        };
        let Ok(t) = t.map_err(|reason| aside.push(row, reason)) else {
            continue;
        };
        let one;
        let windows: &[Bounds] = match recent {
            Some(bounds) if bounds.start <= t && t < bounds.end => {
                one = [bounds];
                &one
            }
            _ => {
                assigned.clear();
                if !plan.windowing.assign(t, &mut assigned) {
                    aside.push(row, OUT_OF_RANGE);
                    continue;
                }
                if tumbling {
                    recent = assigned.last().copied();
                }
                &assigned
            }
        };
        let key = keys.id(row);
        if session {
            sessions.push((row as u32, windows[0], t, key));
            continue;
        }
        if last.len() <= key as usize {
            last.resize(key as usize + 1, None);
        }
        for bounds in windows {
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
            buckets[at].1.push((row as u32, t));
        }
    }
    let keys = keys.keys;
    for (row, bounds, t, key) in sessions {
        let group = store.session(&keys[key as usize], bounds, new);
        update(group, &inputs, row as usize, t);
    }
    for ((bounds, key), rows) in buckets {
        let group = store.group(bounds, &keys[key as usize], new);
        for (acc, input) in group.accs.iter_mut().zip(&inputs) {
            acc.update_rows(input.as_ref(), &rows);
        }
    }
    Ok(aside)
}

/// A batch's distinct keys (encoded, see [`key`]) in order of first appearance, each row
/// given the index of its key among them. A single string or integer key is looked up by
/// its value, so only a batch's new keys are encoded; any other key is encoded per row.
struct Numbering<'a> {
    columns: &'a [Column],
    keys: Vec<Vec<u8>>,
    lookup: Lookup<'a>,
}

enum Lookup<'a> {
    /// One string column. A string of up to 15 bytes is looked up as its bytes and length
    /// packed in a u128 (no hash of a slice, no comparison of bytes); longer ones as text.
    Str {
        array: &'a StringArray,
        short: ShortKeys,
        long: FixedMap<&'a str, u32>,
        null: Option<u32>,
    },
    /// One integer column.
    Int {
        array: &'a Int64Array,
        ids: FixedMap<i64, u32>,
        null: Option<u32>,
    },
    /// Any other key, by its encoding.
    Encoded { ids: FixedMap<Vec<u8>, u32>, buf: Vec<u8> },
}

impl<'a> Numbering<'a> {
    fn new(columns: &'a [Column]) -> Self {
        let lookup = match columns {
            [Column::Str(array)] => Lookup::Str {
                array,
                short: ShortKeys::default(),
                long: FixedMap::default(),
                null: None,
            },
            [Column::Int(array)] => Lookup::Int {
                array,
                ids: FixedMap::default(),
                null: None,
            },
            _ => Lookup::Encoded {
                ids: FixedMap::default(),
                buf: Vec::new(),
            },
        };
        Numbering {
            columns,
            keys: Vec::new(),
            lookup,
        }
    }

    /// The index of row `row`'s key, numbering it if it is new.
    #[inline]
    fn id(&mut self, row: usize) -> u32 {
        let (columns, keys) = (self.columns, &mut self.keys);
        let mut new_key = || {
            let mut encoded = Vec::new();
            key::encode(columns, row, &mut encoded);
            keys.push(encoded);
            keys.len() as u32 - 1
        };
        match &mut self.lookup {
            Lookup::Str { array, null, .. } if array.is_null(row) => *null.get_or_insert_with(new_key),
            Lookup::Str { array, short, long, .. } => {
                let offsets = array.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                match packed(array.values(), start, end - start) {
                    Some(packed) => short.id(packed, new_key),
                    None => *long.entry(array.value(row)).or_insert_with(new_key),
                }
            }
            Lookup::Int { array, null, .. } if array.is_null(row) => *null.get_or_insert_with(new_key),
            Lookup::Int { array, ids, .. } => *ids.entry(array.value(row)).or_insert_with(new_key),
            Lookup::Encoded { ids, buf } => {
                buf.clear();
                key::encode(columns, row, buf);
                match ids.get(buf.as_slice()) {
                    Some(&id) => id,
                    None => {
                        let id = new_key();
                        ids.insert(buf.clone(), id);
                        id
                    }
                }
            }
        }
    }
}

/// Short string keys by their packed value (see [`packed`]): the first [`FEW`] compared
/// with each of them at once, the others in a map. A batch mostly holds a handful of keys,
/// and a few comparisons of two words without a branch cost less than a hash and a probe
/// (in WebAssembly above all), and less than a search that stops at a key that changes
/// unpredictably from row to row.
struct ShortKeys {
    /// The first keys; [`NO_KEY`] where there is none yet.
    few: [u128; FEW],
    ids: [u32; FEW],
    len: usize,
    more: FixedMap<u128, u32>,
}

/// How many keys [`ShortKeys`] compares at once.
const FEW: usize = 8;

/// Never a packed key: their last byte is a length up to 15.
const NO_KEY: u128 = u128::MAX;

impl Default for ShortKeys {
    fn default() -> Self {
        ShortKeys {
            few: [NO_KEY; FEW],
            ids: [0; FEW],
            len: 0,
            more: FixedMap::default(),
        }
    }
}

impl ShortKeys {
    #[inline]
    fn id(&mut self, packed: u128, new_key: impl FnOnce() -> u32) -> u32 {
        // Every slot is compared (at most one matches), so no branch depends on the key.
        let mut found = u32::MAX;
        for (key, id) in self.few.iter().zip(self.ids) {
            found = if *key == packed { id } else { found };
        }
        if found != u32::MAX {
            return found;
        }
        if self.len < FEW {
            let id = new_key();
            (self.few[self.len], self.ids[self.len]) = (packed, id);
            self.len += 1;
            return id;
        }
        *self.more.entry(packed).or_insert_with(new_key)
    }
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

    /// Keys numbered by encoding every row: what [`Numbering`] must agree with.
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
            Some("fifteen bytes.."),
            None,
            Some("sixteen bytes..."),
            Some("fifteen bytes.\0"),
            Some(""),
            Some("a"),
            Some("sixteen bytes..."),
            Some("fifteen bytes.."),
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
            Some(3),
            Some(i32::MAX),
            None,
            Some(-1),
        ]));
        // Rows out of order and repeated, as taken rows may skip some.
        let rows = [7, 0, 1, 2, 3, 4, 5, 6, 0, 5, 11, 9, 8, 10, 6, 4];
        let shapes: [&[(&ArrayRef, Kind)]; 3] = [
            &[(&strings, Kind::Str)],
            &[(&ints, Kind::Int)],
            &[(&strings, Kind::Str), (&ints, Kind::Int)],
        ];
        for shape in shapes {
            let columns: Vec<Column> = shape.iter().map(|(a, k)| Column::new(a, *k).unwrap()).collect();
            let mut numbering = Numbering::new(&columns);
            let ids: Vec<u32> = rows.iter().map(|&row| numbering.id(row)).collect();
            assert_eq!(
                (numbering.keys, ids),
                numbered_by_encoding(&columns, &rows),
                "{shape:?}"
            );
        }
    }

    #[test]
    fn many_short_keys_are_numbered_like_encoded_ones() {
        use std::sync::Arc;

        use sluice_sdk::arrow::array::ArrayRef;

        use crate::value::Kind;

        // More distinct keys than are searched in order, recurring out of order.
        let values: Vec<String> = (0..200).map(|i| format!("k{}", (i * 7) % (3 * FEW))).collect();
        let strings: ArrayRef = Arc::new(StringArray::from_iter_values(&values));
        let columns = [Column::new(&strings, Kind::Str).unwrap()];
        let rows: Vec<usize> = (0..values.len()).rev().collect();
        let mut numbering = Numbering::new(&columns);
        let ids: Vec<u32> = rows.iter().map(|&row| numbering.id(row)).collect();
        assert_eq!(numbering.keys.len(), 3 * FEW);
        assert_eq!((numbering.keys, ids), numbered_by_encoding(&columns, &rows));
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
