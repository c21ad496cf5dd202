//! Window benchmark (issue 5): ticks/s through the stock `window` component against the same
//! aggregation done natively in the host, in the same process, on the same Arrow batches.
//!
//!     cargo bench -p sluice --bench window                 # 20 M ticks, 3 rounds
//!     TICKS=5000000 ROUNDS=5 BATCH=8192 cargo bench -p sluice --bench window
//!
//! The job is scenario 3 of MISSION.md: a 1-minute tumbling average price per ticker on event
//! time, 5 tickers, 100 ticks per second of event time, 20 % of ticks up to 5 s late. Both
//! sides see the same batches, get the watermark (max event time − 5 s) after each batch,
//! and build Arrow batches of closed windows; both results are compared window by window, so
//! the baseline does the same work. The component side includes everything the pipeline pays
//! per batch: Arrow IPC encoding into the sandbox, the call, decoding what comes out, with
//! deadlines and memory caps on. Decoding JSON and writing Parquet are left out on purpose:
//! they are the same for both and are measured by `scripts/bench.sh`.
//!
//! Not a test: the figures depend on the machine. It prints ticks/s per side and their ratio.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use sluice::engine::{Engine, EngineSettings, Limits};

const TICKERS: [&str; 5] = ["AMZN", "AAPL", "MSFT", "INTC", "TBV"];
const MINUTE: i64 = 60_000_000;
const BOUND: i64 = 5_000_000;
const CONFIG: &str = r#"{"time_column": "event_time", "window": {"type": "tumbling", "size": "1m"},
  "group_by": ["ticker"],
  "aggregates": [{"fn": "avg", "column": "price", "as": "avg_price"}, {"fn": "count", "as": "ticks"}]}"#;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let ticks = env("TICKS", 20_000_000);
    let rounds = env("ROUNDS", 3);
    let batch_rows = env("BATCH", 8192);
    let batches = generate(ticks, batch_rows);
    println!("window bench: {ticks} ticks in batches of {batch_rows}, {rounds} rounds");

    let engine = Engine::new(EngineSettings::default()).expect("engine");
    let stock = sluice::stock::lookup("window").expect("stock window component");
    let component = engine
        .load_prebuilt("window", stock.component, stock.digest, stock.precompiled, false)
        .expect("load window");

    let (mut best_wasm, mut best_native) = (Duration::MAX, Duration::MAX);
    for round in 1..=rounds {
        let (wasm_time, wasm_out) = through_component(&component, &batches);
        let (native_time, native_out) = natively(&batches);
        assert!(
            same(&wasm_out, &native_out),
            "the component and the native aggregation disagree"
        );
        println!(
            "  round {round}: component {:>6.2} M ticks/s, native {:>6.2} M ticks/s ({} windows)",
            rate(ticks, wasm_time),
            rate(ticks, native_time),
            wasm_out.len()
        );
        best_wasm = best_wasm.min(wasm_time);
        best_native = best_native.min(native_time);
    }
    println!(
        "best: component {:.2} M ticks/s, native {:.2} M ticks/s, component/native = {:.2}",
        rate(ticks, best_wasm),
        rate(ticks, best_native),
        best_native.as_secs_f64() / best_wasm.as_secs_f64()
    );
}

fn rate(ticks: usize, time: Duration) -> f64 {
    ticks as f64 / time.as_secs_f64() / 1e6
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_time", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("ticker", DataType::Utf8, false),
        Field::new("price", DataType::Float64, true),
    ]))
}

/// Deterministic ticks in arrival order (a small xorshift generator: no dependency).
fn generate(ticks: usize, batch_rows: usize) -> Vec<RecordBatch> {
    let start = 1_767_607_200_000_000_i64; // 2026-01-05 10:00:00 UTC
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut price = [100.0, 120.0, 140.0, 160.0, 180.0];
    let mut out = Vec::new();
    let mut n = 0;
    while n < ticks {
        let rows = batch_rows.min(ticks - n);
        let (mut times, mut names, mut prices) = (Vec::new(), Vec::new(), Vec::new());
        for i in n..n + rows {
            let arrival = start + i as i64 * 10_000;
            let t = (next() % 5) as usize;
            price[t] = ((price[t] * (1.0 + ((next() % 2001) as f64 - 1000.0) * 1e-6)) * 100.0).round() / 100.0;
            let late = next() % 5 == 0;
            let event = if late {
                arrival - (next() % BOUND as u64) as i64
            } else {
                arrival
            };
            times.push(event);
            names.push(TICKERS[t]);
            prices.push(price[t]);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from(times)),
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(prices)),
        ];
        out.push(RecordBatch::try_new(schema(), columns).expect("batch"));
        n += rows;
    }
    out
}

/// A closed window as both sides report it: (start, ticker) → (avg, count).
type Windows = BTreeMap<(i64, String), (f64, i64)>;

/// Same windows, same counts, averages equal to 1e-12 relative (summation order may differ).
fn same(a: &Windows, b: &Windows) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, (x, n)), (kb, (y, m)))| ka == kb && n == m && (x - y).abs() <= 1e-12 * x.abs().max(y.abs()))
}

fn watermark_after(batch: &RecordBatch, max_seen: &mut i64) -> i64 {
    let times = batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("times");
    *max_seen = (*max_seen).max(times.values().iter().copied().max().unwrap_or(i64::MIN));
    *max_seen - BOUND
}

fn through_component(component: &sluice::engine::Component, batches: &[RecordBatch]) -> (Duration, Windows) {
    let mut instance = component.instantiate("window", &Limits::default()).expect("instance");
    let described = instance
        .describe(CONFIG, &schema())
        .expect("describe call")
        .expect("config");
    instance
        .open(CONFIG, &schema(), &described)
        .expect("open call")
        .expect("config");
    let mut emitted = Vec::new();
    let mut max_seen = i64::MIN;
    let started = Instant::now();
    for batch in batches {
        emitted.extend(instance.process(batch).expect("process"));
        let watermark = watermark_after(batch, &mut max_seen);
        emitted.extend(instance.advance_watermark(watermark).expect("watermark"));
    }
    emitted.extend(instance.finish().expect("finish"));
    let elapsed = started.elapsed();
    let mut windows = Windows::new();
    for out in emitted {
        assert_eq!(out.output, "main", "no tick is late in this data");
        collect(&out.rows, &mut windows);
    }
    (elapsed, windows)
}

fn collect(batch: &RecordBatch, windows: &mut Windows) {
    let column = |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("column {name}"));
    let starts = column("window_start")
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("window_start");
    let tickers = column("ticker").as_any().downcast_ref::<StringArray>().expect("ticker");
    let avgs = column("avg_price")
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("avg");
    let counts = column("ticks").as_any().downcast_ref::<Int64Array>().expect("ticks");
    for i in 0..batch.num_rows() {
        let key = (starts.value(i), tickers.value(i).to_string());
        let value = (avgs.value(i), counts.value(i));
        assert!(windows.insert(key, value).is_none(), "a window was emitted twice");
    }
}

/// The baseline: a hash aggregation on (window start, ticker) in plain Rust, firing windows
/// whose end the watermark reached into an Arrow batch of the same shape.
fn natively(batches: &[RecordBatch]) -> (Duration, Windows) {
    let mut open: HashMap<(i64, Arc<str>), (f64, i64)> = HashMap::new();
    let names: Vec<Arc<str>> = TICKERS.iter().map(|&t| Arc::from(t)).collect();
    let mut emitted = Vec::new();
    let mut max_seen = i64::MIN;
    let started = Instant::now();
    for batch in batches {
        let times = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("times");
        let tickers = batch.column(1).as_any().downcast_ref::<StringArray>().expect("tickers");
        let prices = batch.column(2).as_any().downcast_ref::<Float64Array>().expect("prices");
        for i in 0..batch.num_rows() {
            let start = times.value(i).div_euclid(MINUTE) * MINUTE;
            let name = tickers.value(i);
            let ticker = names
                .iter()
                .find(|n| ***n == *name)
                .cloned()
                .unwrap_or_else(|| Arc::from(name));
            let slot = open.entry((start, ticker)).or_insert((0.0, 0));
            if prices.is_valid(i) {
                slot.0 += prices.value(i);
            }
            slot.1 += 1;
        }
        let watermark = watermark_after(batch, &mut max_seen);
        if let Some(out) = fire(&mut open, watermark) {
            emitted.push(out);
        }
    }
    if let Some(out) = fire(&mut open, i64::MAX) {
        emitted.push(out);
    }
    let elapsed = started.elapsed();
    let mut windows = Windows::new();
    for batch in &emitted {
        collect(batch, &mut windows);
    }
    (elapsed, windows)
}

fn fire(open: &mut HashMap<(i64, Arc<str>), (f64, i64)>, watermark: i64) -> Option<RecordBatch> {
    let mut closed: Vec<_> = open
        .keys()
        .filter(|(start, _)| watermark >= start + MINUTE - 1)
        .cloned()
        .collect();
    if closed.is_empty() {
        return None;
    }
    closed.sort();
    let (mut starts, mut ends, mut tickers, mut avgs, mut counts) = (vec![], vec![], vec![], vec![], vec![]);
    for key in closed {
        let (sum, count) = open.remove(&key).expect("open window");
        starts.push(key.0);
        ends.push(key.0 + MINUTE);
        tickers.push(key.1.to_string());
        avgs.push(sum / count as f64);
        counts.push(count);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("window_start", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("window_end", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("ticker", DataType::Utf8, false),
        Field::new("avg_price", DataType::Float64, true),
        Field::new("ticks", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from(starts)),
        Arc::new(TimestampMicrosecondArray::from(ends)),
        Arc::new(StringArray::from(tickers)),
        Arc::new(Float64Array::from(avgs)),
        Arc::new(Int64Array::from(counts)),
    ];
    Some(RecordBatch::try_new(schema, columns).expect("windows"))
}
