//! KPL de-aggregation benchmark: user records/s and MB/s of aggregates taken apart on one
//! core, by `sluice::source::kinesis::kpl::deaggregate` (the zero-copy reader) and, on the
//! same aggregates, by prost decoding into owned structs (what the module would do without
//! its own reader).
//!
//!     cargo bench -p sluice --bench kpl                          # 2,000 aggregates × 100 records, 10 rounds
//!     AGGREGATES=500 RECORDS=100 BYTES=100 ROUNDS=20 cargo bench -p sluice --bench kpl
//!
//! Each aggregate holds RECORDS user records of about BYTES bytes each (JSON-like text with a
//! counter, so no two are alike) under 10 partition keys, framed as KPL does (magic, protobuf,
//! MD5), built in memory with the prost structs. Both readers check the MD5 and look every key
//! up; the MD5 alone is timed too, as it is the floor both stand on. MB/s counts the aggregate
//! bytes read.
//!
//! Not a test: the figures depend on the machine. It prints the best round of each.

use std::hint::black_box;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use prost::Message as _;
use sluice::source::kinesis::kpl::{self, AggregatedRecord, Record, Unpacked};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let aggregates = env("AGGREGATES", 2000);
    let per_aggregate = env("RECORDS", 100);
    let bytes = env("BYTES", 100);
    let rounds = env("ROUNDS", 10);
    let input = build(aggregates, per_aggregate, bytes);
    let total_bytes: usize = input.iter().map(Vec::len).sum();
    let records = aggregates * per_aggregate;
    println!(
        "kpl bench: {aggregates} aggregates of {per_aggregate} records of ~{bytes} bytes ({:.1} MB), {rounds} rounds",
        total_bytes as f64 / 1e6
    );

    let mut best = [Duration::MAX; 3];
    for _ in 0..rounds {
        best[0] = best[0].min(time(|| zero_copy(&input), records));
        best[1] = best[1].min(time(|| with_prost(&input), records));
        best[2] = best[2].min(time(|| digest_only(&input), 0));
    }
    for (name, elapsed) in ["deaggregate (zero-copy)", "prost, owned", "MD5 alone"]
        .iter()
        .zip(best)
    {
        let per_second = elapsed.as_secs_f64();
        println!(
            "  {name:<24} {:>7.2} M user records/s  {:>7.1} MB/s",
            records as f64 / per_second / 1e6,
            total_bytes as f64 / per_second / 1e6
        );
    }
    println!(
        "zero-copy / prost: {:.2}× the user records per second",
        best[1].as_secs_f64() / best[0].as_secs_f64()
    );
}

/// Times one pass; `expected` user records must come out (0: not counted).
fn time(pass: impl Fn() -> usize, expected: usize) -> Duration {
    let started = Instant::now();
    let got = black_box(pass());
    let elapsed = started.elapsed();
    assert!(
        expected == 0 || got == expected,
        "{got} user records, expected {expected}"
    );
    elapsed
}

fn build(aggregates: usize, per_aggregate: usize, bytes: usize) -> Vec<Vec<u8>> {
    let keys: Vec<String> = (0..10).map(|k| format!("device-{k:04}")).collect();
    (0..aggregates)
        .map(|a| {
            let records = (0..per_aggregate)
                .map(|r| {
                    let mut data =
                        format!(r#"{{"device":"device-{:04}","seq":{a}{r:03},"reading":"#, r % 10).into_bytes();
                    data.resize(bytes.saturating_sub(1).max(data.len()), b'7');
                    data.push(b'}');
                    Record {
                        partition_key_index: Some((r % 10) as u64),
                        explicit_hash_key_index: None,
                        data: Some(data),
                        tags: vec![],
                    }
                })
                .collect();
            kpl::encode(&AggregatedRecord {
                partition_key_table: keys.clone(),
                explicit_hash_key_table: vec![],
                records,
            })
        })
        .collect()
}

fn zero_copy(input: &[Vec<u8>]) -> usize {
    let mut count = 0;
    for aggregate in input {
        match kpl::deaggregate(aggregate) {
            Ok(Unpacked::Aggregate(records)) => {
                for record in &records {
                    black_box((record.partition_key, record.data));
                }
                count += records.len();
            }
            other => panic!("not an aggregate: {other:?}"),
        }
    }
    count
}

/// The alternative: prost decodes owned structs, then each user record gets its own key.
fn with_prost(input: &[Vec<u8>]) -> usize {
    let mut count = 0;
    for aggregate in input {
        let (protobuf, digest) = aggregate[4..].split_at(aggregate.len() - 20);
        assert!(Md5::digest(protobuf)[..] == *digest, "digest");
        let decoded = AggregatedRecord::decode(protobuf).expect("protobuf");
        let records: Vec<(String, Vec<u8>)> = decoded
            .records
            .into_iter()
            .map(|r| {
                let key = &decoded.partition_key_table[r.partition_key_index.expect("index") as usize];
                (key.clone(), r.data.expect("data"))
            })
            .collect();
        for record in &records {
            black_box(record);
        }
        count += records.len();
    }
    count
}

fn digest_only(input: &[Vec<u8>]) -> usize {
    for aggregate in input {
        black_box(Md5::digest(&aggregate[4..aggregate.len() - 16]));
    }
    0
}
