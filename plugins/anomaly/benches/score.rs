//! How long the detector takes per row, run natively (`cargo bench -p sluice-plugin-anomaly`):
//! batches of 8,192 rows like the sensor bench's (1,000 devices interleaved, a string key,
//! temperatures on a random walk), scored with the default EWMA. Prints ns per row, the fastest of seven rounds,
//! for the stock component and for a floor run in the same process: the same arithmetic in
//! a plain loop over a hash map (no bound on keys, no recency order, no Arrow output). Both
//! must flag the same rows with the same scores. Read the ratio: on a shared machine the
//! ns per row of either drift by half between runs.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use sluice_plugin_anomaly::Anomaly;
use sluice_sdk::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use sluice_sdk::arrow::datatypes::{DataType, Field, Float64Type, Schema};
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
    let open = || match Harness::<Anomaly>::open(config, schema.clone()) {
        Ok(anomaly) => anomaly,
        Err(e) => panic!("config refused: {e:?}"),
    };

    // Both flag the same rows with the same scores.
    let mut anomaly = open();
    let mut stock = Verdicts::default();
    for batch in &input {
        let emitted = anomaly.process(batch.clone()).expect("batch scored");
        let rows = emitted.main().expect("rows out");
        let flags = rows.column_by_name("is_anomaly").expect("flags").as_boolean().clone();
        let scores = rows
            .column_by_name("anomaly_score")
            .expect("scores")
            .as_primitive::<Float64Type>()
            .clone();
        for row in 0..rows.num_rows() {
            stock.add(flags.value(row), scores.is_valid(row).then(|| scores.value(row)));
        }
    }
    let mut floor = Floor::default();
    let mut plain = Verdicts::default();
    for batch in &input {
        floor.score(batch, &mut plain);
    }
    if let Some(row) =
        (0..stock.scores.len().max(plain.scores.len())).find(|&r| stock.scores.get(r) != plain.scores.get(r))
    {
        panic!(
            "the floor scores row {row} as {:?}, the component as {:?}",
            plain.scores.get(row).map(|s| s.map(f64::from_bits)),
            stock.scores.get(row).map(|s| s.map(f64::from_bits))
        );
    }
    assert_eq!(
        stock.flagged, plain.flagged,
        "the floor flags as many rows as the component"
    );
    assert!(stock.flagged > 0, "the data has anomalies");

    let mut best = [f64::INFINITY; 2];
    for _ in 0..7 {
        let mut anomaly = open();
        let started = Instant::now();
        for batch in &input {
            black_box(anomaly.process(batch.clone()).expect("batch scored"));
        }
        best[0] = best[0].min(started.elapsed().as_nanos() as f64 / (input.len() * ROWS) as f64);

        let mut floor = Floor::default();
        let started = Instant::now();
        for batch in &input {
            let mut verdicts = Verdicts::default();
            floor.score(batch, &mut verdicts);
            black_box(verdicts);
        }
        best[1] = best[1].min(started.elapsed().as_nanos() as f64 / (input.len() * ROWS) as f64);
    }
    println!(
        "stock anomaly component   {:6.1} ns/row (the fastest of 7 rounds)",
        best[0]
    );
    println!("plain loop over a map     {:6.1} ns/row", best[1]);
    println!("ratio component / plain loop: {:.2}", best[0] / best[1]);
}

/// What a detector said of every row: how many it flagged and its scores.
#[derive(Debug, Default)]
struct Verdicts {
    flagged: usize,
    scores: Vec<Option<u64>>,
}

impl Verdicts {
    fn add(&mut self, flag: bool, score: Option<f64>) {
        self.flagged += usize::from(flag);
        self.scores.push(score.map(f64::to_bits));
    }
}

/// The defaults' arithmetic (EWMA with alpha 0.1, warm-up 10, threshold 4, anomalies not
/// folded in, five in a row start the key afresh) over a plain hash map.
#[derive(Default)]
struct Floor {
    keys: HashMap<u128, Series, foldhash::fast::FixedState>,
}

#[derive(Default)]
struct Series {
    seen: u64,
    run: u32,
    moments: Option<(f64, f64)>,
}

impl Floor {
    fn score(&mut self, batch: &RecordBatch, out: &mut Verdicts) {
        let keys = batch.column(0).as_string::<i32>();
        let values = batch.column(1).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            let key = keys.value(row).as_bytes();
            let mut packed = [0u8; 16];
            packed[..key.len()].copy_from_slice(key);
            packed[15] = key.len() as u8;
            let series = self.keys.entry(u128::from_le_bytes(packed)).or_default();
            let x = values.value(row);
            let warm = series.seen >= 10;
            series.seen += 1;
            let score = match series.moments {
                Some((mean, var)) if warm => {
                    let (deviation, std) = ((x - mean).abs(), var.max(0.0).sqrt());
                    match (std == 0.0, deviation == 0.0) {
                        (true, true) => None,
                        (true, false) => Some(f64::INFINITY),
                        (false, _) => Some(deviation / std).filter(|s| !s.is_nan()),
                    }
                }
                _ => None,
            };
            let flag = score.is_some_and(|s| s >= 4.0);
            if !flag {
                series.run = 0;
                series.update(x);
            } else {
                series.run += 1;
                if series.run >= 5 {
                    *series = Series {
                        seen: 1,
                        ..Series::default()
                    };
                    series.update(x);
                }
            }
            out.add(flag, score);
        }
    }
}

impl Series {
    fn update(&mut self, x: f64) {
        const ALPHA: f64 = 0.1;
        self.moments = Some(match self.moments {
            None => (x, 0.0),
            Some((mean, var)) => {
                let diff = x - mean;
                let incr = ALPHA * diff;
                (mean + incr, (1.0 - ALPHA) * (var + diff * incr))
            }
        });
    }
}
