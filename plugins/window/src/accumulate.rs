//! Aggregate accumulators: the running value of one aggregate for one window and key.
//!
//! Nulls are skipped by every function; `count` without a column counts rows. A function
//! that saw no value gives null, except `count`, which gives 0. `first`/`last` pick the
//! value with the earliest/latest event time, ties going to the row that arrived
//! first/last (Flink's `FIRST_VALUE`/`LAST_VALUE` also skip nulls). Integer sums are exact
//! (i128) and give null if the total does not fit in int64; float sums add in arrival order.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use sluice_sdk::arrow::array::{Array, ArrowPrimitiveType, PrimitiveArray};

use crate::config::AggFn;
use crate::value::{Column, Kind, Value, ValueRef};

/// The running state of one aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Acc {
    /// Rows or non-null values seen.
    Count(i64),
    /// Sum of integers, `None` until a value is seen.
    SumInt(Option<i128>),
    /// Sum of floats, `None` until a value is seen.
    SumFloat(#[serde(with = "crate::value::opt_float_bits")] Option<f64>),
    /// Sum and count of integers.
    AvgInt { sum: i128, count: i64 },
    /// Sum and count of floats.
    AvgFloat {
        #[serde(with = "crate::value::float_bits")]
        sum: f64,
        count: i64,
    },
    /// Smallest value so far.
    Min(Option<Value>),
    /// Greatest value so far.
    Max(Option<Value>),
    /// Value with the earliest event time so far, and that time.
    First(Option<(i64, Value)>),
    /// Value with the latest event time so far, and that time.
    Last(Option<(i64, Value)>),
}

impl Acc {
    /// The empty accumulator of `func` over a column of kind `input` (`None` for `count`
    /// of rows). `plan` has checked the combination.
    pub fn new(func: AggFn, input: Option<Kind>) -> Acc {
        let float = input == Some(Kind::Float);
        match func {
            AggFn::Count => Acc::Count(0),
            AggFn::Sum if float => Acc::SumFloat(None),
            AggFn::Sum => Acc::SumInt(None),
            AggFn::Avg if float => Acc::AvgFloat { sum: 0.0, count: 0 },
            AggFn::Avg => Acc::AvgInt { sum: 0, count: 0 },
            AggFn::Min => Acc::Min(None),
            AggFn::Max => Acc::Max(None),
            AggFn::First => Acc::First(None),
            AggFn::Last => Acc::Last(None),
        }
    }

    /// Count one row (for `count` without a column; other accumulators ignore it).
    pub fn update_row(&mut self) {
        if let Acc::Count(n) = self {
            *n += 1;
        }
    }

    /// Add the rows `rows` (position in `column`, event time), in order: the same as
    /// [`Acc::update`] row by row (or [`Acc::update_row`] without a column), with tight
    /// loops for counts, sums and averages.
    pub fn update_rows(&mut self, column: Option<&Column>, rows: &[(u32, i64)]) {
        // What a min or max keeps of two values.
        let keep = if matches!(self, Acc::Min(_)) {
            Ordering::Less
        } else {
            Ordering::Greater
        };
        match (self, column) {
            (Acc::Count(n), None) => *n += rows.len() as i64,
            (_, None) => {}
            (Acc::Count(n), Some(c)) => *n += rows.iter().filter(|(r, _)| c.is_valid(*r as usize)).count() as i64,
            (Acc::AvgFloat { sum, count }, Some(Column::Float(a))) => {
                for &(r, _) in rows {
                    if a.is_valid(r as usize) {
                        *sum += a.value(r as usize);
                        *count += 1;
                    }
                }
            }
            (Acc::SumFloat(total), Some(Column::Float(a))) => {
                for &(r, _) in rows {
                    if a.is_valid(r as usize) {
                        *total = Some(total.unwrap_or(0.0) + a.value(r as usize));
                    }
                }
            }
            (Acc::AvgInt { sum, count }, Some(Column::Int(a))) => {
                for &(r, _) in rows {
                    if a.is_valid(r as usize) {
                        *sum += i128::from(a.value(r as usize));
                        *count += 1;
                    }
                }
            }
            (Acc::SumInt(total), Some(Column::Int(a))) => {
                for &(r, _) in rows {
                    if a.is_valid(r as usize) {
                        *total = Some(total.unwrap_or(0) + i128::from(a.value(r as usize)));
                    }
                }
            }
            (Acc::Min(cur) | Acc::Max(cur), Some(Column::Float(a))) if matches!(cur, None | Some(Value::Float(_))) => {
                let best = cur
                    .as_ref()
                    .and_then(|v| if let Value::Float(f) = v { Some(*f) } else { None });
                *cur = extreme(best, a, rows, keep, f64::total_cmp).map(Value::Float);
            }
            (Acc::Min(cur) | Acc::Max(cur), Some(Column::Int(a))) if matches!(cur, None | Some(Value::Int(_))) => {
                let best = cur
                    .as_ref()
                    .and_then(|v| if let Value::Int(n) = v { Some(*n) } else { None });
                *cur = extreme(best, a, rows, keep, i64::cmp).map(Value::Int);
            }
            (acc, Some(c)) => {
                for &(r, t) in rows {
                    acc.update(c.get(r as usize), t);
                }
            }
        }
    }

    /// Add one row's value, which has event time `time`.
    pub fn update(&mut self, value: Option<ValueRef<'_>>, time: i64) {
        let Some(value) = value else { return };
        match self {
            Acc::Count(n) => *n += 1,
            Acc::SumInt(sum) => *sum = Some(sum.unwrap_or(0) + integer(value)),
            Acc::SumFloat(sum) => *sum = Some(sum.unwrap_or(0.0) + float(value)),
            Acc::AvgInt { sum, count } => {
                *sum += integer(value);
                *count += 1;
            }
            Acc::AvgFloat { sum, count } => {
                *sum += float(value);
                *count += 1;
            }
            Acc::Min(cur) => replace_if(cur, value, |v, c| v.compare(c).is_lt()),
            Acc::Max(cur) => replace_if(cur, value, |v, c| v.compare(c).is_gt()),
            Acc::First(cur) => replace_timed(cur, time, value, |t, c| t < c),
            Acc::Last(cur) => replace_timed(cur, time, value, |t, c| t >= c),
        }
    }

    /// Fold in `other`, an accumulator of the same aggregate over later-starting rows (when
    /// session windows merge).
    pub fn merge(&mut self, other: Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::SumInt(a), Acc::SumInt(b)) => *a = add_opt(*a, b),
            (Acc::SumFloat(a), Acc::SumFloat(b)) => *a = add_opt(*a, b),
            (Acc::AvgInt { sum, count }, Acc::AvgInt { sum: s, count: c }) => {
                *sum += s;
                *count += c;
            }
            (Acc::AvgFloat { sum, count }, Acc::AvgFloat { sum: s, count: c }) => {
                *sum += s;
                *count += c;
            }
            (Acc::Min(a), Acc::Min(Some(b))) => replace_if(a, b.as_ref(), |v, c| v.compare(c).is_lt()),
            (Acc::Max(a), Acc::Max(Some(b))) => replace_if(a, b.as_ref(), |v, c| v.compare(c).is_gt()),
            (Acc::First(a), Acc::First(Some(b))) if a.as_ref().is_none_or(|(t, _)| b.0 < *t) => *a = Some(b),
            (Acc::Last(a), Acc::Last(Some(b))) if a.as_ref().is_none_or(|(t, _)| b.0 >= *t) => *a = Some(b),
            // Empty or older min/max/first/last, or (by invariant never) accumulators of
            // different aggregates: nothing to fold in.
            _ => {}
        }
    }

    /// The aggregate's value.
    pub fn result(&self) -> Option<Value> {
        match self {
            Acc::Count(n) => Some(Value::Int(*n)),
            Acc::SumInt(sum) => sum.and_then(|s| i64::try_from(s).ok()).map(Value::Int),
            Acc::SumFloat(sum) => sum.map(Value::Float),
            Acc::AvgInt { sum, count } => (*count > 0).then(|| Value::Float(*sum as f64 / *count as f64)),
            Acc::AvgFloat { sum, count } => (*count > 0).then(|| Value::Float(*sum / *count as f64)),
            Acc::Min(v) | Acc::Max(v) => v.clone(),
            Acc::First(v) | Acc::Last(v) => v.as_ref().map(|(_, v)| v.clone()),
        }
    }

    /// Whether this accumulator could have been made by `Acc::new(func, input)` and fed
    /// values of kind `input` (checked on restore).
    pub fn fits(&self, func: AggFn, input: Option<Kind>) -> bool {
        let held = match self {
            Acc::Min(v) | Acc::Max(v) => v.as_ref(),
            Acc::First(v) | Acc::Last(v) => v.as_ref().map(|(_, v)| v),
            _ => None,
        };
        let kind_ok = match (held, input) {
            (Some(v), Some(kind)) => v.is(kind),
            (Some(_), None) => false,
            (None, _) => true,
        };
        kind_ok && std::mem::discriminant(self) == std::mem::discriminant(&Acc::new(func, input))
    }
}

/// [`Acc::update`] of a min (`keep` = less) or max (greater) over `rows` of a float or
/// integer column, from the extreme so far (`best`) in the values' `order`.
fn extreme<T: ArrowPrimitiveType>(
    mut best: Option<T::Native>,
    a: &PrimitiveArray<T>,
    rows: &[(u32, i64)],
    keep: Ordering,
    order: impl Fn(&T::Native, &T::Native) -> Ordering,
) -> Option<T::Native> {
    for &(r, _) in rows {
        let r = r as usize;
        if a.is_valid(r) {
            let v = a.value(r);
            if best.is_none_or(|b| order(&v, &b) == keep) {
                best = Some(v);
            }
        }
    }
    best
}

fn replace_if(cur: &mut Option<Value>, value: ValueRef<'_>, better: impl Fn(ValueRef<'_>, ValueRef<'_>) -> bool) {
    match cur {
        None => *cur = Some(value.to_owned()),
        Some(c) if better(value, c.as_ref()) => c.set(value),
        Some(_) => {}
    }
}

fn replace_timed(cur: &mut Option<(i64, Value)>, time: i64, value: ValueRef<'_>, better: impl Fn(i64, i64) -> bool) {
    match cur {
        None => *cur = Some((time, value.to_owned())),
        Some((t, c)) if better(time, *t) => {
            *t = time;
            c.set(value);
        }
        Some(_) => {}
    }
}

fn add_opt<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

/// An integer value widened for exact sums (`plan` admits only numeric inputs to sums).
fn integer(value: ValueRef<'_>) -> i128 {
    match value {
        ValueRef::Int(n) => n.into(),
        ValueRef::UInt(n) => n.into(),
        _ => 0,
    }
}

fn float(value: ValueRef<'_>) -> f64 {
    match value {
        ValueRef::Float(f) => f,
        ValueRef::Int(n) => n as f64,
        ValueRef::UInt(n) => n as f64,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_rows_equals_updating_row_by_row() {
        use std::sync::Arc;

        use sluice_sdk::arrow::array::{ArrayRef, Float64Array, Int64Array};

        let floats: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.5),
            None,
            Some(-2.25),
            Some(1e300),
            Some(0.1),
            Some(-0.0),
            Some(f64::NEG_INFINITY),
            Some(0.0),
        ]));
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(i64::MAX),
            Some(3),
            None,
            Some(i64::MAX),
            Some(-7),
            Some(i64::MIN),
            None,
            Some(0),
        ]));
        let rows: Vec<(u32, i64)> = vec![(4, 10), (0, 5), (2, 7), (1, 7), (3, 1), (5, 2), (7, 3), (6, 8)];
        for (kind, array) in [(Kind::Float, &floats), (Kind::Int, &ints)] {
            let column = Column::new(array, kind).expect("column");
            for func in [
                AggFn::Count,
                AggFn::Sum,
                AggFn::Avg,
                AggFn::Min,
                AggFn::Max,
                AggFn::First,
                AggFn::Last,
            ] {
                let mut by_row = Acc::new(func, Some(kind));
                for &(r, t) in &rows {
                    by_row.update(column.get(r as usize), t);
                }
                let mut at_once = Acc::new(func, Some(kind));
                at_once.update_rows(Some(&column), &rows);
                assert_eq!(at_once, by_row, "{func:?} over {kind:?}");
                // In two parts, the second starting from what the first left.
                let mut in_parts = Acc::new(func, Some(kind));
                in_parts.update_rows(Some(&column), &rows[..3]);
                in_parts.update_rows(Some(&column), &rows[3..]);
                assert_eq!(in_parts, by_row, "{func:?} over {kind:?} in two parts");
            }
        }
        let mut by_row = Acc::new(AggFn::Count, None);
        rows.iter().for_each(|_| by_row.update_row());
        let mut at_once = Acc::new(AggFn::Count, None);
        at_once.update_rows(None, &rows);
        assert_eq!(at_once, by_row);
    }

    fn run(func: AggFn, kind: Kind, rows: &[(Option<Value>, i64)]) -> Option<Value> {
        let mut acc = Acc::new(func, Some(kind));
        for (value, time) in rows {
            acc.update(value.as_ref().map(Value::as_ref), *time);
        }
        acc.result()
    }

    fn ints(values: &[Option<i64>]) -> Vec<(Option<Value>, i64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.map(Value::Int), i as i64))
            .collect()
    }

    #[test]
    fn every_function_skips_nulls() {
        let rows = ints(&[Some(4), None, Some(-2), Some(7), None]);
        assert_eq!(run(AggFn::Count, Kind::Int, &rows), Some(Value::Int(3)));
        assert_eq!(run(AggFn::Sum, Kind::Int, &rows), Some(Value::Int(9)));
        assert_eq!(run(AggFn::Avg, Kind::Int, &rows), Some(Value::Float(3.0)));
        assert_eq!(run(AggFn::Min, Kind::Int, &rows), Some(Value::Int(-2)));
        assert_eq!(run(AggFn::Max, Kind::Int, &rows), Some(Value::Int(7)));
        assert_eq!(run(AggFn::First, Kind::Int, &rows), Some(Value::Int(4)));
        assert_eq!(run(AggFn::Last, Kind::Int, &rows), Some(Value::Int(7)));
    }

    #[test]
    fn only_nulls_give_null_except_count_which_gives_zero() {
        let rows = ints(&[None, None]);
        assert_eq!(run(AggFn::Count, Kind::Int, &rows), Some(Value::Int(0)));
        for func in [
            AggFn::Sum,
            AggFn::Avg,
            AggFn::Min,
            AggFn::Max,
            AggFn::First,
            AggFn::Last,
        ] {
            assert_eq!(run(func, Kind::Int, &rows), None, "{func:?}");
            assert_eq!(run(func, Kind::Float, &[]), None, "{func:?}");
        }
    }

    #[test]
    fn count_of_rows_counts_nulls_too() {
        let mut acc = Acc::new(AggFn::Count, None);
        acc.update_row();
        acc.update_row();
        assert_eq!(acc.result(), Some(Value::Int(2)));
    }

    #[test]
    fn first_and_last_follow_event_time_not_arrival() {
        let rows = vec![
            (Some(Value::Str("b".into())), 20),
            (Some(Value::Str("a".into())), 10),
            (Some(Value::Str("a2".into())), 10),
            (Some(Value::Str("c".into())), 30),
            (Some(Value::Str("c2".into())), 30),
            (None, 40),
            (None, 5),
        ];
        assert_eq!(run(AggFn::First, Kind::Str, &rows), Some(Value::Str("a".into())));
        assert_eq!(run(AggFn::Last, Kind::Str, &rows), Some(Value::Str("c2".into())));
    }

    #[test]
    fn integer_sums_are_exact_and_null_beyond_int64() {
        let rows = ints(&[Some(i64::MAX), Some(i64::MAX), Some(i64::MIN), Some(i64::MIN)]);
        assert_eq!(run(AggFn::Sum, Kind::Int, &rows), Some(Value::Int(-2)));
        assert_eq!(run(AggFn::Sum, Kind::Int, &rows[..2]), None);
        let big = vec![(Some(Value::UInt(u64::MAX)), 0), (Some(Value::UInt(1)), 1)];
        assert_eq!(run(AggFn::Sum, Kind::UInt, &big), None);
        assert_eq!(
            run(AggFn::Avg, Kind::UInt, &big),
            Some(Value::Float(u64::MAX as f64 / 2.0 + 0.5))
        );
    }

    #[test]
    fn float_min_and_max_use_total_order() {
        let rows = vec![
            (Some(Value::Float(1.0)), 0),
            (Some(Value::Float(f64::NAN)), 1),
            (Some(Value::Float(-3.5)), 2),
        ];
        assert_eq!(run(AggFn::Min, Kind::Float, &rows), Some(Value::Float(-3.5)));
        let Some(Value::Float(max)) = run(AggFn::Max, Kind::Float, &rows) else {
            panic!()
        };
        assert!(max.is_nan());
        assert_eq!(run(AggFn::Sum, Kind::Float, &rows[..1]), Some(Value::Float(1.0)));
    }

    #[test]
    fn merging_equals_updating_with_all_rows() {
        let rows = ints(&[Some(3), None, Some(9), Some(-1), Some(4)]);
        for func in [
            AggFn::Count,
            AggFn::Sum,
            AggFn::Avg,
            AggFn::Min,
            AggFn::Max,
            AggFn::First,
            AggFn::Last,
        ] {
            let whole = run(func, Kind::Int, &rows);
            for split in 0..=rows.len() {
                let mut a = Acc::new(func, Some(Kind::Int));
                let mut b = Acc::new(func, Some(Kind::Int));
                for (v, t) in &rows[..split] {
                    a.update(v.as_ref().map(Value::as_ref), *t);
                }
                for (v, t) in &rows[split..] {
                    b.update(v.as_ref().map(Value::as_ref), *t);
                }
                a.merge(b);
                assert_eq!(a.result(), whole, "{func:?} split at {split}");
            }
        }
    }

    #[test]
    fn accumulators_survive_json_and_are_checked_against_the_config() {
        let mut accs = vec![
            Acc::new(AggFn::Sum, Some(Kind::Int)),
            Acc::new(AggFn::Sum, Some(Kind::Float)),
            Acc::new(AggFn::Avg, Some(Kind::Float)),
            Acc::new(AggFn::Last, Some(Kind::Str)),
        ];
        accs[0].update(Some(ValueRef::Int(i64::MAX)), 0);
        accs[0].update(Some(ValueRef::Int(i64::MAX)), 0);
        accs[1].update(Some(ValueRef::Float(0.1)), 0);
        accs[1].update(Some(ValueRef::Float(0.2)), 0);
        accs[2].update(Some(ValueRef::Float(f64::NAN)), 0);
        accs[3].update(Some(ValueRef::Str("x")), 7);
        let json = serde_json::to_string(&accs).unwrap();
        let back: Vec<Acc> = serde_json::from_str(&json).unwrap();
        assert_eq!(back[..2], accs[..2]);
        assert_eq!(back[3], accs[3]);
        let (Acc::AvgFloat { sum, .. }, Acc::SumFloat(Some(s))) = (&back[2], &back[1]) else {
            panic!()
        };
        assert!(sum.is_nan());
        assert_eq!(s.to_bits(), (0.1f64 + 0.2).to_bits());
        assert!(back[3].fits(AggFn::Last, Some(Kind::Str)));
        assert!(!back[3].fits(AggFn::Last, Some(Kind::Int)));
        assert!(!back[3].fits(AggFn::First, Some(Kind::Str)));
        assert!(!back[0].fits(AggFn::Sum, Some(Kind::Float)));
    }
}
