//! How long the detector takes per row, run natively (`cargo bench -p sluice-plugin-anomaly`):
//! batches of 8,192 rows like the sensor bench's (1,000 devices interleaved, a string key,
//! temperatures on a random walk), scored with the default EWMA. Prints ns per row, the fastest of seven rounds.

use std::sync::Arc;
use std::time::Instant;

use sluice_plugin_anomaly::Anomaly;
use sluice_sdk::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use sluice_sdk::arrow::datatypes::{DataType, Field, Schema};
use sluice_sdk::testing::Harness;

const ROWS: usize = 8192;
const DEVICES: usize = 1000;

fn batches(count: usize, schema: &Arc<Schema>) -> Vec<RecordBatch> {
    let mut temps = vec![22.0f64; DEVICES];
    let mut seed = 42u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 1000) as f64 / 1000.0 - 0.5
    };
    let mut row = 0usize;
    (0..count)
        .map(|_| {
            let mut devices = Vec::with_capacity(ROWS);
            let mut values = Vec::with_capacity(ROWS);
            for _ in 0..ROWS {
                let device = row % DEVICES;
                temps[device] += next();
                devices.push(format!("raspberrypi-{device}"));
                values.push(temps[device]);
                row += 1;
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(devices)),
                Arc::new(Float64Array::from(values)),
            ];
            RecordBatch::try_new(schema.clone(), columns).expect("a batch of the schema")
        })
        .collect()
}

fn main() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, true),
        Field::new("temperature", DataType::Float64, true),
    ]));
    let input = batches(100, &schema);
    let config = r#"{"key":"device_id","value":"temperature","threshold":4.0,"warmup":10}"#;
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        let Ok(mut anomaly) = Harness::<Anomaly>::open(config, schema.clone()) else {
            panic!("config refused")
        };
        let started = Instant::now();
        for batch in &input {
            anomaly.process(batch.clone()).expect("batch scored");
        }
        let ns = started.elapsed().as_nanos() as f64 / (input.len() * ROWS) as f64;
        best = best.min(ns);
    }
    println!("{best:.1} ns/row (the fastest of 7 rounds)");
}
