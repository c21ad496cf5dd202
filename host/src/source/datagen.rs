//! Seeded synthetic records, for trying a pipeline with no data (Flink's `datagen`, Vector's
//! `demo_logs`), for benchmarks and for tests.
//!
//! ```toml
//! [source]
//! type = "datagen"
//! template = "sensors"   # or "ticks": the shapes of scenarios 1 and 3
//! rows = 100000          # in all, spread over the partitions; absent: endless
//! partitions = 4         # devices (sensors) or producers (ticks), each a source partition
//! rate = 2000            # rows per second at most, in all; absent: as fast as it can
//! disorder = "5s"        # event times up to this far behind their place (out of order)
//! seed = 7
//! ```
//!
//! Records are JSON text, decoded like any other input, and a pure function of the seed,
//! the partition and the record's index in it: the same settings give the same records on
//! every run, and a run resumed from a checkpoint goes on exactly where the last one
//! stopped. Event time advances one `interval` (default 1 s) per record in each partition
//! from `start` (default 2026-01-01T00:00:00), minus a seeded jitter of up to `disorder`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::position::PartitionPosition;
use super::{PlannedSource, arrow_schema};
use super::{Source, SourceError, SourceSpec};
use crate::checkpoint::SourcePosition;
use crate::config::{DatagenSourceConfig, DatagenTemplate, Diagnostic};
use crate::record::{Chunk, Origins, PartitionEvent, SourceSpan};

/// A planned generator.
#[derive(Debug, Clone, PartialEq)]
pub struct DatagenSpec {
    /// Its settings.
    pub settings: DatagenSourceConfig,
}

/// Plan a generator: its template's schema, or the declared one.
pub fn plan(cfg: &DatagenSourceConfig, _diags: &mut [Diagnostic]) -> Option<PlannedSource> {
    let schema = match &cfg.schema {
        Some(fields) => arrow_schema(fields),
        None => template_schema(cfg.template),
    };
    Some(PlannedSource {
        spec: Arc::new(DatagenSpec { settings: cfg.clone() }),
        schema,
    })
}

/// The schema a template's records decode into when none is declared.
pub fn template_schema(template: DatagenTemplate) -> SchemaRef {
    let f = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
    Arc::new(Schema::new(match template {
        DatagenTemplate::Sensors => vec![
            f("client_id", DataType::Utf8, false),
            f("timestamp", DataType::Utf8, false),
            f("humidity", DataType::Float64, true),
            f("temperature", DataType::Float64, true),
            f("pressure", DataType::Float64, true),
            f("pitch", DataType::Float64, true),
            f("roll", DataType::Float64, true),
            f("yaw", DataType::Float64, true),
            f("count", DataType::Int64, true),
        ],
        DatagenTemplate::Ticks => vec![
            f("event_time", DataType::Timestamp(TimeUnit::Microsecond, None), false),
            f("ticker", DataType::Utf8, false),
            f("price", DataType::Float64, true),
        ],
    }))
}

impl SourceSpec for DatagenSpec {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn kind(&self) -> &'static str {
        "datagen"
    }

    fn id(&self) -> String {
        let s = &self.settings;
        format!(
            "datagen:{}:seed={}:partitions={}",
            s.template.name(),
            s.seed,
            s.partitions
        )
    }

    fn open(&self, stop: &Arc<AtomicBool>) -> Result<Box<dyn Source>, SourceError> {
        let s = &self.settings;
        let n = s.partitions.max(1);
        let partitions = (0..n)
            .map(|p| Partition {
                name: Arc::from(format!("{}-{p:03}", s.template.name()).as_str()),
                next: 0,
                end: s.rows.map(|rows| rows / n + u64::from(p < rows % n)),
                announced: false,
            })
            .collect();
        Ok(Box::new(Datagen {
            settings: s.clone(),
            partitions,
            turn: 0,
            next_seq: 0,
            produced: 0,
            started: Instant::now(),
            stop: stop.clone(),
        }))
    }
}

struct Partition {
    name: Arc<str>,
    next: u64,
    end: Option<u64>,
    announced: bool,
}

impl Partition {
    fn done(&self) -> bool {
        self.end.is_some_and(|e| self.next >= e)
    }
}

/// The running generator.
struct Datagen {
    settings: DatagenSourceConfig,
    partitions: Vec<Partition>,
    turn: usize,
    next_seq: u64,
    /// Rows produced by this run (for the rate limit).
    produced: u64,
    started: Instant,
    stop: Arc<AtomicBool>,
}

impl Datagen {
    /// Wait until `rows` more rows are allowed by the rate; false if asked to stop meanwhile.
    fn pace(&self, rows: u64) -> bool {
        let Some(rate) = self.settings.rate else {
            return !self.stop.load(Ordering::SeqCst);
        };
        let due = self.started + Duration::from_secs_f64((self.produced + rows) as f64 / rate as f64);
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
        }
    }
}

impl Source for Datagen {
    fn resume(&mut self, position: &SourcePosition) -> Result<(), SourceError> {
        self.next_seq = position.next_seq;
        for p in &mut self.partitions {
            if let Some(value) = position.partitions.get(p.name.as_ref()) {
                match PartitionPosition::from_value(&p.name, "datagen", value)? {
                    PartitionPosition::Generated { next } => p.next = next,
                    other => {
                        return Err(SourceError::Position {
                            partition: p.name.to_string(),
                            kind: "datagen",
                            message: format!("found {other:?}"),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, SourceError> {
        let mut events = Vec::new();
        for p in &mut self.partitions {
            if !p.announced && !p.done() {
                p.announced = true;
                events.push(PartitionEvent::Opened(p.name.clone()));
            }
        }
        let live: Vec<usize> = (0..self.partitions.len())
            .filter(|&i| !self.partitions[i].done())
            .collect();
        let Some(&i) = live.iter().find(|&&i| i >= self.turn).or(live.first()) else {
            return Ok(None);
        };
        let p = &self.partitions[i];
        let count = p.end.map_or(self.settings.batch_rows as u64, |e| {
            (e - p.next).min(self.settings.batch_rows as u64)
        });
        if !self.pace(count) {
            return Ok(None);
        }
        let mut chunk = Chunk {
            seq: self.next_seq,
            data: Vec::with_capacity(count as usize * 200),
            ends: Vec::with_capacity(count as usize),
            origins: Origins::Generated,
            ingest_micros: chrono::Utc::now().timestamp_micros(),
            ..Chunk::default()
        };
        let first = p.next;
        let mut bytes = 0;
        for index in first..first + count {
            let before = chunk.data.len();
            record(&self.settings, i as u64, index, &mut chunk.data);
            chunk.data.push(b'\n');
            bytes += (chunk.data.len() - before) as u64;
            chunk.ends.push(chunk.data.len());
        }
        let p = &mut self.partitions[i];
        p.next = first + count;
        chunk.span = SourceSpan {
            file: p.name.clone(),
            first_line: first + 1,
            last_line: p.next,
            start_offset: 0,
            end_offset: bytes,
        };
        chunk.position = Some((p.name.clone(), PartitionPosition::Generated { next: p.next }.to_value()));
        if p.done() {
            events.push(PartitionEvent::Ended(p.name.clone()));
        }
        chunk.events = events;
        self.turn = i + 1;
        self.next_seq += 1;
        self.produced += count;
        Ok(Some(chunk))
    }

    fn bounded(&self) -> bool {
        self.settings.rows.is_some()
    }
}

/// A seeded, well-mixed 64-bit value for (seed, partition, index, field) (SplitMix64's
/// finaliser).
fn mix(seed: u64, partition: u64, index: u64, field: u64) -> u64 {
    let mut z = seed
        ^ partition.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ field.wrapping_mul(0x94D0_49BB_1331_11EB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform value in [0, 1).
fn unit(seed: u64, partition: u64, index: u64, field: u64) -> f64 {
    (mix(seed, partition, index, field) >> 11) as f64 / (1u64 << 53) as f64
}

/// Round to two decimals, as sensors report.
fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Append record `index` of `partition` as one JSON object (no newline).
fn record(s: &DatagenSourceConfig, partition: u64, index: u64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let step = s.interval.as_micros() as i64;
    let jitter = match s.disorder.as_micros() as u64 {
        0 => 0,
        d => (mix(s.seed, partition, index, 99) % (d + 1)) as i64,
    };
    let micros = s.start_micros + index as i64 * step - jitter;
    let time = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let u = |field| unit(s.seed, partition, index, field);
    // Writing into a Vec cannot fail.
    let _ = match s.template {
        DatagenTemplate::Sensors => {
            // A slow daily-ish wave per device, noise, and a rare spike for anomaly detection.
            let base = 22.0 + partition as f64 % 7.0 + 3.0 * (index as f64 / 600.0).sin();
            let spike = if u(1) < 0.005 { 15.0 } else { 0.0 };
            write!(
                out,
                r#"{{"client_id":"raspberrypi-{partition}","timestamp":"{}","humidity":{},"temperature":{},"pressure":{},"pitch":{},"roll":{},"yaw":{},"count":{}}}"#,
                time.format("%Y-%m-%d %H:%M:%S"),
                r2(35.0 + 10.0 * u(2)),
                r2(base + spike + (u(3) - 0.5)),
                r2(1000.0 + 30.0 * u(4)),
                r2(20.0 * u(5) - 10.0),
                r2(20.0 * u(6) - 10.0),
                r2(360.0 * u(7)),
                index + 1
            )
        }
        DatagenTemplate::Ticks => {
            const TICKERS: [&str; 8] = ["AMZN", "AAPL", "MSFT", "GOOG", "META", "NVDA", "TSLA", "NFLX"];
            let ticker = TICKERS[(mix(s.seed, partition, index, 1) % TICKERS.len() as u64) as usize];
            let price = r2(50.0 + 100.0 * u(2));
            write!(
                out,
                r#"{{"event_time":"{}","ticker":"{ticker}","price":{price}}}"#,
                time.format("%Y-%m-%dT%H:%M:%S%.3f")
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rows: Option<u64>) -> DatagenSourceConfig {
        DatagenSourceConfig {
            template: DatagenTemplate::Ticks,
            rows,
            partitions: 3,
            rate: None,
            disorder: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            start_micros: 1_767_225_600_000_000,
            seed: 7,
            batch_rows: 4,
            schema: None,
        }
    }

    fn drain(source: &mut dyn Source) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        while let Some(c) = source.next_chunk().expect("chunk") {
            chunks.push(c);
        }
        chunks
    }

    #[test]
    fn a_bounded_generator_gives_every_row_once_over_its_partitions_deterministically() {
        let spec = DatagenSpec {
            settings: settings(Some(20)),
        };
        let stop = Arc::default();
        let chunks = drain(spec.open(&stop).expect("open").as_mut());
        assert_eq!(chunks.iter().map(Chunk::records).sum::<usize>(), 20);
        let parts: std::collections::BTreeSet<_> = chunks.iter().map(|c| c.span.file.to_string()).collect();
        assert_eq!(parts.len(), 3);
        let again = drain(spec.open(&stop).expect("open").as_mut());
        assert_eq!(
            chunks.iter().map(|c| c.data.clone()).collect::<Vec<_>>(),
            again.iter().map(|c| c.data.clone()).collect::<Vec<_>>(),
            "same seed, same records"
        );
        let ended = chunks
            .iter()
            .flat_map(|c| &c.events)
            .filter(|e| matches!(e, PartitionEvent::Ended(_)))
            .count();
        assert_eq!(ended, 3);
    }

    #[test]
    fn resuming_from_positions_continues_exactly_where_a_run_stopped() {
        let spec = DatagenSpec {
            settings: settings(Some(30)),
        };
        let stop = Arc::default();
        let whole = drain(spec.open(&stop).expect("open").as_mut());
        let mut first = spec.open(&stop).expect("open");
        let mut position = SourcePosition::default();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let c = first.next_chunk().expect("read").expect("chunk");
            let (key, value) = c.position.clone().expect("position");
            position.partitions.insert(key.to_string(), value);
            position.next_seq = c.seq + 1;
            seen.push(c);
        }
        let mut second = spec.open(&stop).expect("open");
        second.resume(&position).expect("resume");
        seen.extend(drain(second.as_mut()));
        let key = |c: &Chunk| (c.span.file.to_string(), c.span.first_line);
        let mut a: Vec<_> = whole.iter().map(|c| (key(c), c.data.clone())).collect();
        let mut b: Vec<_> = seen.iter().map(|c| (key(c), c.data.clone())).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn disorder_stays_within_its_bound_and_records_decode_to_the_template_schema() {
        let s = settings(Some(300));
        let mut out = Vec::new();
        for i in 0..300 {
            record(&s, 1, i, &mut out);
            out.push(b'\n');
        }
        let decoder =
            crate::decode::json::JsonDecoder::new(template_schema(DatagenTemplate::Ticks), Default::default());
        let mut chunk = Chunk::default();
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            chunk.push_record(line);
        }
        let decoded = decoder.decode(&chunk).expect("decode");
        assert!(decoded.bad.is_empty(), "{:?}", decoded.bad.first());
        let batch = decoded.batch.expect("batch");
        let times = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .expect("timestamps");
        for (i, t) in times.values().iter().enumerate() {
            let place = s.start_micros + i as i64 * 1_000_000;
            assert!(*t <= place && *t >= place - 5_000_000, "row {i}: {t} vs {place}");
        }
        assert!(
            times.values().windows(2).any(|w| w[1] < w[0]),
            "some rows are out of order"
        );
    }

    #[test]
    fn an_endless_generator_stops_when_asked() {
        let spec = DatagenSpec {
            settings: DatagenSourceConfig {
                rate: Some(1000),
                ..settings(None)
            },
        };
        let stop: Arc<AtomicBool> = Arc::default();
        let mut source = spec.open(&stop).expect("open");
        assert!(!source.bounded());
        assert!(source.next_chunk().expect("read").is_some());
        stop.store(true, Ordering::SeqCst);
        assert!(source.next_chunk().expect("read").is_none());
    }
}
