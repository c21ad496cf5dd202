//! How long the window transform takes per row, run natively (`cargo bench -p
//! sluice-plugin-window`): batches of 8,192 ticks like scenario 3's (a handful of tickers,
//! event times 10 ms apart, slightly out of order), one-minute tumbling windows grouped by
//! ticker with avg, min, max and count, the watermark advanced after every batch. Prints ns
//! per row, the fastest of seven rounds.

use std::sync::Arc;
use std::time::Instant;

use sluice_plugin_window::Window;
use sluice_sdk::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use sluice_sdk::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use sluice_sdk::testing::Harness;

const ROWS: usize = 8192;
const TICKERS: [&str; 8] = ["AAPL", "AMZN", "GOOG", "META", "MSFT", "NVDA", "TSLA", "NFLX"];

fn batches(count: usize, schema: &Arc<Schema>) -> Vec<RecordBatch> {
    let mut seed = 7u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let start = 1_767_607_200_000_000i64;
    let mut row = 0i64;
    (0..count)
        .map(|_| {
            let (mut times, mut tickers, mut prices) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ROWS {
                let jitter = (next() % 3) as i64 * 10_000;
                times.push(start + row * 10_000 - jitter);
                tickers.push(TICKERS[(next() % TICKERS.len() as u64) as usize]);
                prices.push(100.0 + (next() % 10_000) as f64 / 100.0);
                row += 1;
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(TimestampMicrosecondArray::from(times)),
                Arc::new(StringArray::from(tickers)),
                Arc::new(Float64Array::from(prices)),
            ];
            RecordBatch::try_new(schema.clone(), columns).expect("a batch of the schema")
        })
        .collect()
}

fn main() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_time", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("ticker", DataType::Utf8, false),
        Field::new("price", DataType::Float64, true),
    ]));
    let input = batches(100, &schema);
    let config = r#"{"time_column":"event_time","window":{"type":"tumbling","size":"1m"},"group_by":["ticker"],
        "aggregates":[{"fn":"avg","column":"price","as":"avg_price"},{"fn":"min","column":"price","as":"low"},
                      {"fn":"max","column":"price","as":"high"},{"fn":"count","as":"ticks"}]}"#;
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        let Ok(mut window) = Harness::<Window>::open(config, schema.clone()) else {
            panic!("config refused")
        };
        let started = Instant::now();
        for (i, batch) in input.iter().enumerate() {
            window.process(batch.clone()).expect("batch taken");
            let watermark = 1_767_607_200_000_000i64 + ((i + 1) * ROWS) as i64 * 10_000 - 5_000_000;
            window.advance_watermark(watermark).expect("watermark");
        }
        let ns = started.elapsed().as_nanos() as f64 / (input.len() * ROWS) as f64;
        best = best.min(ns);
    }
    println!("{best:.1} ns/row (the fastest of 7 rounds)");
}
