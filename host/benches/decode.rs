//! JSON → Arrow decoding benchmark on one core: sluice's strict decoder
//! (`sluice::decode::json::JsonDecoder`, declared schema) against arrow-json's tape decoder
//! (what sluice used before, and what most Rust engines use) on the same chunks, same run.
//!
//!     cargo bench -p sluice --bench decode                  # 400 chunks × 8192 sensor records, 5 rounds
//!     CHUNKS=100 ROWS=8192 ROUNDS=9 cargo bench -p sluice --bench decode
//!     SHAPE=ticks cargo bench -p sluice --bench decode      # scenario 3's ticks instead
//!
//! The records are the sensor example's shape (a string id, a time string, seven doubles and
//! an integer), with varied values; or, with `SHAPE=ticks`, scenario 3's ticks (a timestamp
//! with microseconds, 100 a second, a ticker and a price). arrow-json is given the same
//! schema and builds the same batches; it checks less (it rounds 2.7 into an integer column,
//! and reads "3" as 3).
//!
//! Not a test: the figures depend on the machine. It prints the best round of each and the
//! ratio.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow_json::reader::ReaderBuilder;
use sluice::decode::json::{DecodeOptions, JsonDecoder};
use sluice::record::Chunk;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let chunks = env("CHUNKS", 400);
    let rows = env("ROWS", 8192);
    let rounds = env("ROUNDS", 5);
    let ticks = std::env::var("SHAPE").is_ok_and(|s| s == "ticks");
    let schema = if ticks {
        Arc::new(Schema::new(vec![
            Field::new("event_time", DataType::Timestamp(TimeUnit::Microsecond, None), false),
            Field::new("ticker", DataType::Utf8, false),
            Field::new("price", DataType::Float64, true),
        ]))
    } else {
        sensor_schema()
    };
    let input: Vec<Chunk> = (0..chunks)
        .map(|c| if ticks { tick_chunk(c, rows) } else { chunk(c, rows) })
        .collect();
    let bytes: usize = input.iter().map(|c| c.data.len()).sum();
    let total = chunks * rows;
    println!(
        "decode bench: {chunks} chunks × {rows} {} records ({:.1} MB), {rounds} rounds, one core",
        if ticks { "tick" } else { "sensor" },
        bytes as f64 / 1e6
    );
    let ours = JsonDecoder::new(schema.clone(), DecodeOptions::default());
    let mut best = [Duration::MAX; 2];
    for _ in 0..rounds {
        best[0] = best[0].min(time(|| {
            for c in &input {
                let d = ours.decode(c).expect("decode");
                assert!(d.bad.is_empty(), "{:?}", d.bad.first().map(|b| &b.reason));
                black_box(d.batch);
            }
        }));
        best[1] = best[1].min(time(|| {
            for c in &input {
                let mut decoder = ReaderBuilder::new(schema.clone())
                    .with_batch_size(rows)
                    .build_decoder()
                    .expect("decoder");
                decoder.decode(&c.data).expect("arrow-json decode");
                black_box(decoder.flush().expect("flush"));
            }
        }));
    }
    for (name, elapsed) in ["sluice JsonDecoder (strict)", "arrow-json tape decoder"]
        .iter()
        .zip(best)
    {
        let secs = elapsed.as_secs_f64();
        println!(
            "  {name:<30} {:>7.2} M rows/s  {:>7.1} MB/s",
            total as f64 / secs / 1e6,
            bytes as f64 / secs / 1e6
        );
    }
    println!(
        "  ratio sluice / arrow-json: {:.2}",
        best[1].as_secs_f64() / best[0].as_secs_f64()
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Sensor records with values that vary by row (a small LCG, so every run is the same).
fn chunk(c: usize, rows: usize) -> Chunk {
    let mut chunk = Chunk::default();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ c as u64;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as f64 / (1u64 << 31) as f64
    };
    for r in 0..rows {
        let line = format!(
            "{{\"client_id\": \"raspberrypi-{}\", \"timestamp\": \"2020-04-16 10:{:02}:{:02}\", \"humidity\": {:.2}, \"temperature\": {:.2}, \"pressure\": {:.2}, \"pitch\": {:.2}, \"roll\": {:.2}, \"yaw\": {:.2}, \"count\": {}}}",
            r % 40,
            (r / 60) % 60,
            r % 60,
            30.0 + 40.0 * next(),
            15.0 + 20.0 * next(),
            990.0 + 40.0 * next(),
            -20.0 + 40.0 * next(),
            -20.0 + 40.0 * next(),
            360.0 * next(),
            c * rows + r
        );
        chunk.push_record(line.as_bytes());
    }
    chunk
}

/// The sensor example's schema.
fn sensor_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("client_id", DataType::Utf8, false),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("humidity", DataType::Float64, true),
        Field::new("temperature", DataType::Float64, true),
        Field::new("pressure", DataType::Float64, true),
        Field::new("pitch", DataType::Float64, true),
        Field::new("roll", DataType::Float64, true),
        Field::new("yaw", DataType::Float64, true),
        Field::new("count", DataType::Int64, true),
    ]))
}

/// Ticks as `scripts/gen_ticks.py` writes them: 100 a second (every fifth up to 3 s late),
/// one of five tickers, a price with two decimals.
fn tick_chunk(c: usize, rows: usize) -> Chunk {
    const TICKERS: [&str; 5] = ["AAPL", "AMZN", "INTC", "MSFT", "TBV"];
    let mut chunk = Chunk::default();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ c as u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for r in 0..rows {
        let n = (c * rows + r) as u64;
        let late = if next() % 5 == 0 { next() % 300 } else { 0 };
        let centis = (n.saturating_sub(late)) % 8_640_000;
        let line = format!(
            "{{\"event_time\": \"2026-01-05T{:02}:{:02}:{:02}.{:06}\", \"ticker\": \"{}\", \"price\": {}.{:02}}}",
            centis / 360_000,
            centis / 6_000 % 60,
            centis / 100 % 60,
            centis % 100 * 10_000,
            TICKERS[(next() % 5) as usize],
            100 + next() % 100,
            next() % 100
        );
        chunk.push_record(line.as_bytes());
    }
    chunk
}
