//! Detection quality with the default config: synthetic sensor series with spikes injected
//! at known positions, and the checked-in sample data. The figures are printed (run with
//! `--nocapture`) so they can be reported.

use super::*;

/// SplitMix64: a small deterministic generator, enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

const DEVICES: usize = 50;
const READINGS: usize = 2000;
/// Spikes are injected only after the first readings of a device, which a detector cannot
/// judge (the warm-up) and which set its first statistics.
const FIRST_SPIKE: usize = 20;
const SPIKE_RATE: f64 = 0.005;

/// Readings interleaved by device (`d0`, `d1`, …, then the next second), as sensors report:
/// a slow random walk around 25 °C (steps uniform in ±0.15, kept within 15–35) plus
/// N(0, 0.05²) noise, and with probability 0.5 % a spike of ±8–15. Returns the readings
/// in batches of 1000 and, per row, whether it is a spike.
fn synthetic(seed: u64) -> (Vec<RecordBatch>, Vec<bool>) {
    let mut rng = Rng(seed);
    let names: Vec<&'static str> = (0..DEVICES).map(|d| &*format!("d{d}").leak()).collect();
    let mut levels: Vec<f64> = (0..DEVICES).map(|_| 25.0 + rng.uniform(-3.0, 3.0)).collect();
    let mut rows: Vec<Reading> = Vec::with_capacity(DEVICES * READINGS);
    let mut truth = Vec::with_capacity(DEVICES * READINGS);
    for t in 0..READINGS {
        for (d, level) in levels.iter_mut().enumerate() {
            *level = (*level + rng.uniform(-0.15, 0.15)).clamp(15.0, 35.0);
            let mut temp = *level + 0.05 * rng.normal();
            let spike = t >= FIRST_SPIKE && rng.unit() < SPIKE_RATE;
            if spike {
                let size = rng.uniform(8.0, 15.0);
                temp += if rng.unit() < 0.5 { size } else { -size };
            }
            rows.push(((t * DEVICES + d) as i64, Some(names[d]), Some(temp)));
            truth.push(spike);
        }
    }
    (rows.chunks(1000).map(readings).collect(), truth)
}

/// Precision and recall of `flagged` against `truth`, with the counts.
fn quality(flagged: &[bool], truth: &[bool]) -> (f64, f64, String) {
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    for (&f, &t) in flagged.iter().zip(truth) {
        match (f, t) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    let precision = f64::from(tp) / f64::from(tp + fp).max(1.0);
    let recall = f64::from(tp) / f64::from(tp + fn_).max(1.0);
    (
        precision,
        recall,
        format!("{tp} true, {fp} false positives, {fn_} missed"),
    )
}

/// Run `config` over the synthetic data of each seed; the pooled precision and recall.
fn measure(name: &str, config: &str, seeds: &[u64]) -> (f64, f64) {
    let (mut flagged, mut truth) = (Vec::new(), Vec::new());
    for &seed in seeds {
        let (batches, spikes) = synthetic(seed);
        let out = run(config, &batches);
        assert_eq!(out.main.len(), spikes.len());
        flagged.extend(out.flags());
        truth.extend(spikes);
    }
    let (precision, recall, counts) = quality(&flagged, &truth);
    eprintln!(
        "anomaly quality [{name}]: precision {precision:.4}, recall {recall:.4} ({counts}; {} seeds × {DEVICES} devices × {READINGS} readings)",
        seeds.len()
    );
    (precision, recall)
}

#[test]
fn the_default_config_finds_injected_spikes_with_high_precision_and_recall() {
    let (precision, recall) = measure("ewma, defaults", r#"{"key":"device","value":"temp"}"#, &[1, 2, 3]);
    assert!(precision >= 0.9, "precision {precision}");
    assert!(recall >= 0.9, "recall {recall}");
}

#[test]
fn the_zscore_method_finds_them_too_but_suits_a_drifting_series_less() {
    // A window's mean lags a random walk by half the window and its spread varies a lot,
    // so the z-score of ordinary readings has heavier tails than the EWMA's.
    let (precision, recall) = measure(
        "zscore, window 60",
        r#"{"key":"device","value":"temp","method":"zscore"}"#,
        &[1, 2, 3],
    );
    assert!(precision >= 0.7, "precision {precision}");
    assert!(recall >= 0.9, "recall {recall}");
}

#[test]
fn without_resets_one_false_positive_on_a_drift_freezes_a_key() {
    // What `reset_after` is for: with it off, a key whose walk got one reading past the
    // threshold keeps frozen statistics and is flagged for as long as it stays away.
    let (precision, recall) = measure(
        "ewma, reset_after 0",
        r#"{"key":"device","value":"temp","reset_after":0}"#,
        &[1, 2, 3],
    );
    assert!(precision < 0.8, "precision {precision}");
    assert!(recall >= 0.9, "recall {recall}");
}

#[test]
fn the_sample_sensor_data_flags_exactly_its_spikes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/data/sensors-1.ndjson");
    let text = std::fs::read_to_string(path).unwrap();
    // Well-formed readings only, as the pipeline's decoder would pass them on.
    let mut rows: Vec<Reading> = Vec::new();
    for (line, text) in text.lines().enumerate() {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(text) else {
            continue;
        };
        if let (Some(id), Some(temp)) = (record["client_id"].as_str(), record["temperature"].as_f64()) {
            rows.push((line as i64, Some(&*id.to_owned().leak()), Some(temp)));
        }
    }
    // A spike is more than 5 °C from the median of its device's three readings either side
    // (the walk moves at most 0.15 per reading; the generator's spikes are +12–20).
    let mut by_device: std::collections::BTreeMap<&str, Vec<(i64, f64)>> = Default::default();
    for &(line, id, temp) in &rows {
        by_device.entry(id.unwrap()).or_default().push((line, temp.unwrap()));
    }
    let mut spikes: Vec<i64> = Vec::new();
    for readings in by_device.values() {
        for (i, &(line, temp)) in readings.iter().enumerate() {
            let mut around: Vec<f64> = readings[i.saturating_sub(3)..i]
                .iter()
                .chain(readings.iter().skip(i + 1).take(3))
                .map(|r| r.1)
                .collect();
            if around.is_empty() {
                continue;
            }
            around.sort_by(f64::total_cmp);
            if (temp - around[around.len() / 2]).abs() > 5.0 {
                spikes.push(line);
            }
        }
    }
    spikes.sort();
    assert_eq!(spikes.len(), 7, "the sample's spikes: {spikes:?}");

    let batches: Vec<RecordBatch> = rows.chunks(500).map(readings).collect();
    let out = run(r#"{"key":"device","value":"temp"}"#, &batches);
    let flagged: Vec<i64> = out.main.iter().filter(|r| r.flag).map(|r| r.seq).collect();
    eprintln!(
        "anomaly sample sensors-1.ndjson: {} readings, spikes at lines {spikes:?}, flagged {flagged:?}",
        rows.len()
    );
    assert_eq!(flagged, spikes);
}
