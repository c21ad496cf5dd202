//! The failure policy with plain Rust transforms behind the [`Calls`] seam: bisection and its
//! budget, deadlines, skip and halt, quarantine, and rebuilding a stateful stage's state
//! without the failed batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use arrow::array::{AsArray, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::Int64Type;

use super::*;

/// A transform that fails (with `error`) on any batch holding a value in `bad`, and keeps
/// the number of rows it processed as its state.
struct Scripted {
    bad: Vec<i64>,
    error: CallError,
    calls: Arc<AtomicU32>,
    rows: u64,
}

impl Calls for Scripted {
    fn batch_deadline(&self) -> Option<std::time::Instant> {
        None
    }

    fn process_until(
        &mut self,
        batch: &RecordBatch,
        _until: Option<std::time::Instant>,
    ) -> Result<Vec<Emitted>, CallError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let values = batch.column(0).as_primitive::<Int64Type>();
        if values.iter().flatten().any(|v| self.bad.contains(&v)) {
            // A failed call may leave the state half-updated: count the rows anyway.
            self.rows += batch.num_rows() as u64;
            return Err(self.error.clone());
        }
        self.rows += batch.num_rows() as u64;
        // Every row passes, naming its input row.
        Ok(vec![Emitted {
            output: "main".into(),
            rows: batch.clone(),
            lineage: Some(UInt32Array::from_iter_values(0..batch.num_rows() as u32)),
        }])
    }

    fn advance_watermark(&mut self, _micros: i64) -> Result<Vec<Emitted>, CallError> {
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<Emitted>, CallError> {
        Ok(Vec::new())
    }

    fn snapshot(&mut self) -> Result<Option<(u32, Vec<u8>)>, CallError> {
        Ok(Some((1, self.rows.to_le_bytes().to_vec())))
    }

    fn restore(&mut self, _version: u32, data: Vec<u8>) -> Result<(), CallError> {
        self.rows = u64::from_le_bytes(data.try_into().map_err(|_| CallError::Failed("bad state".into()))?);
        Ok(())
    }
}

/// Opens [`Scripted`] instances, counting them.
struct Factory {
    bad: Vec<i64>,
    error: CallError,
    calls: Arc<AtomicU32>,
    opened: AtomicU32,
}

impl Open for Factory {
    fn open(&self, _label: &str) -> Result<Box<dyn Calls>, WorkerError> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Scripted {
            bad: self.bad.clone(),
            error: self.error.clone(),
            calls: self.calls.clone(),
            rows: 0,
        }))
    }
}

fn factory(bad: &[i64], error: CallError) -> Arc<Factory> {
    Arc::new(Factory {
        bad: bad.to_vec(),
        error,
        calls: Arc::default(),
        opened: AtomicU32::new(0),
    })
}

fn stage(f: &Arc<Factory>, on_error: OnError, stateful: bool, quarantine_after: u32) -> Stage {
    let policy = Policy {
        name: "s".into(),
        digest: "0123456789abcdef".into(),
        stateful,
        on_error,
        quarantine_after,
        watermark: None,
    };
    let routing = Routing {
        name: "s".into(),
        index: 0,
        tapped: Vec::new(),
    };
    let opener: Arc<dyn Open> = f.clone();
    Stage::start(policy, opener, "p/s#0".into(), routing).expect("stage")
}

/// Rows `range`, value `v` decoded from chunk record `v + 1000`.
fn batch(range: std::ops::Range<i64>) -> Traced {
    let records: Vec<usize> = range.clone().map(|v| v as usize + 1000).collect();
    Traced {
        batch: RecordBatch::try_from_iter([(
            "v",
            Arc::new(Int64Array::from_iter_values(range)) as arrow::array::ArrayRef,
        )])
        .expect("batch"),
        lineage: Lineage::of_records(&records),
    }
}

fn values(batches: &[Traced]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.batch.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

/// Each row's value and the record its lineage names (value + 1000 if it followed the row).
fn value_records(rows: &RecordBatch, lineage: &Lineage) -> Vec<(i64, i64)> {
    let Lineage::Records(records) = lineage else {
        panic!("lineage lost: {lineage:?}")
    };
    let values = rows.column(0).as_primitive::<Int64Type>().values();
    values
        .iter()
        .zip(records)
        .map(|(v, r)| (*v, *r as i64 - 1000))
        .collect()
}

fn dead_values(dead: &[Aside]) -> Vec<i64> {
    dead.iter()
        .flat_map(|d| match d {
            Aside::Rows { rows, .. } => rows.column(0).as_primitive::<Int64Type>().values().to_vec(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn bisection_dead_letters_only_the_failing_rows_and_keeps_row_order() {
    let f = factory(&[137, 600], CallError::Failed("bad row".into()));
    let mut s = stage(&f, OnError::DeadLetter, false, 5);
    let mut dead = Vec::new();
    let main = s.run(batch(0..1000), &mut dead).expect("run");
    let want: Vec<i64> = (0..1000).filter(|v| *v != 137 && *v != 600).collect();
    assert_eq!(values(&main), want);
    assert_eq!(dead_values(&dead), [137, 600]);
    assert!(f.calls.load(Ordering::SeqCst) <= MAX_BISECT_CALLS + 1);
    // Every row, passed or dead, still names its own record.
    for b in &main {
        assert!(value_records(&b.batch, &b.lineage).iter().all(|(v, r)| v == r));
    }
    for d in &dead {
        let Aside::Rows { rows, lineage, .. } = d else { continue };
        assert!(value_records(rows, lineage).iter().all(|(v, r)| v == r), "{lineage:?}");
    }
}

#[test]
fn bisection_stops_at_its_budget_and_dead_letters_the_rest_in_halves() {
    // Every other row fails: isolating them all would take thousands of calls.
    let bad: Vec<i64> = (0..8192).step_by(2).collect();
    let f = factory(&bad, CallError::Trap("unreachable".into()));
    let mut s = stage(&f, OnError::DeadLetter, false, 5);
    let mut dead = Vec::new();
    let main = s.run(batch(0..8192), &mut dead).expect("run");
    let calls = f.calls.load(Ordering::SeqCst);
    assert!(calls <= MAX_BISECT_CALLS + 1, "{calls} calls");
    assert_eq!(values(&main).len() + dead_values(&dead).len(), 8192, "no row lost");
    assert!(values(&main).iter().all(|v| v % 2 == 1), "no failing row passed");
    // A trap poisons the instance: fresh ones were opened.
    assert!(f.opened.load(Ordering::SeqCst) > 1);
}

#[test]
fn a_deadline_is_not_bisected_and_skip_batch_dead_letters_the_whole_batch() {
    for (error, on_error) in [
        (CallError::Timeout("deadline".into()), OnError::DeadLetter),
        (CallError::Failed("no".into()), OnError::SkipBatch),
    ] {
        let f = factory(&[5], error);
        let mut s = stage(&f, on_error, false, 5);
        let mut dead = Vec::new();
        let main = s.run(batch(0..100), &mut dead).expect("run");
        assert!(main.is_empty());
        assert_eq!(dead_values(&dead), (0..100).collect::<Vec<_>>());
        assert_eq!(f.calls.load(Ordering::SeqCst), 1, "one call, no bisection");
        let Aside::Rows { reason, .. } = &dead[0] else {
            panic!("rows expected");
        };
        assert!(
            reason.as_deref().is_some_and(|r| r.contains("0123456789ab")),
            "{reason:?}"
        );
    }
}

#[test]
fn halt_stops_and_quarantine_ends_a_run_of_wholly_failed_batches() {
    let f = factory(&[1], CallError::Failed("no".into()));
    let mut s = stage(&f, OnError::Halt, false, 5);
    assert!(matches!(
        s.run(batch(0..4), &mut Vec::new()),
        Err(WorkerError::Halted { .. })
    ));

    let f = factory(&(0..10).collect::<Vec<_>>(), CallError::Failed("no".into()));
    let mut s = stage(&f, OnError::SkipBatch, false, 3);
    let mut dead = Vec::new();
    assert!(s.run(batch(0..10), &mut dead).is_ok());
    assert!(s.run(batch(0..10), &mut dead).is_ok());
    // A batch that partly passes resets the count.
    assert!(s.run(batch(10..20), &mut dead).is_ok());
    assert!(s.run(batch(0..10), &mut dead).is_ok());
    assert!(s.run(batch(0..10), &mut dead).is_ok());
    assert!(matches!(
        s.run(batch(0..10), &mut dead),
        Err(WorkerError::Quarantined { batches: 3, .. })
    ));
}

#[test]
fn a_stateful_stage_is_rebuilt_without_the_failed_batch() {
    let f = factory(&[999], CallError::Failed("half-updated".into()));
    let mut s = stage(&f, OnError::DeadLetter, true, 5);
    let mut dead = Vec::new();
    s.run(batch(0..10), &mut dead).expect("ok batch");
    s.run(batch(990..1000), &mut dead).expect("failed batch");
    // A stateful stage is never bisected (re-feeding parts would count rows twice).
    assert_eq!(dead_values(&dead), (990..1000).collect::<Vec<_>>());
    s.run(batch(20..25), &mut dead).expect("ok batch");
    let (_, state) = s.snapshot().expect("snapshot").expect("stateful");
    let rows = u64::from_le_bytes(state.try_into().expect("8 bytes"));
    assert_eq!(rows, 15, "the failed batch left no trace in the state");
    assert_eq!(f.opened.load(Ordering::SeqCst), 2, "rebuilt on a fresh instance");
}
