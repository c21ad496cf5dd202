//! Kinesis Data Streams: every shard of a stream, each a source partition, read by polling
//! (`GetRecords`) or enhanced fan-out (`SubscribeToShard`), with the AWS SDK's default
//! credential and region chain.
//!
//! ```toml
//! [source]
//! type = "kinesis"
//! stream = "my-data-stream"            # or stream_arn
//! region = "us-east-1"                 # otherwise the default region chain
//! endpoint_url = "http://127.0.0.1:…"  # emulators; absent on AWS
//! start = "trim_horizon"               # | "latest" | { at_timestamp = "…" }: first run only
//! consumer = "polling"                 # | { efo = "sluice-consumer" }
//! decode = "json"                      # | "cloudwatch_logs" | "lines"
//! end = "never"                        # | "caught_up": stop at the stream's tip (a backfill)
//! ```
//!
//! # How it reads
//! One tokio runtime, owned by the source, runs a coordinator ([`coordinator`]) and one
//! reader task per shard ([`poll`] or [`efo`]). The coordinator lists the shards, asks an
//! assigner ([`assign`]) which are ours (today: all of them), and starts a shard only once
//! every parent is read to its end ([`lineage`], KDS-18). Readers send what they fetched
//! through bounded channels, so a slow pipeline slows the reads; the pipeline's reader
//! thread turns it into chunks ([`frame`]): KPL aggregates are unpacked natively
//! ([`kpl`]), CloudWatch Logs envelopes become one row per log event ([`cloudwatch`]).
//!
//! # Positions
//! Each shard's position is its last record read: `(sequence, sub_sequence)`, the
//! sub-sequence only when a chunk ended inside a KPL aggregate (resume AT that sequence and
//! skip what was read, KPL-04; otherwise AFTER it). A shard opened before it delivered a
//! record holds KCL's sentinels (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`), so a restart
//! reads it from where the first run meant to. A closed shard keeps `ended` until all its
//! children have started, then leaves the checkpoint. Its children's records are always
//! numbered after its last one, and chunks commit in order, so no checkpoint can hold a
//! child's records without its parents' ends (KDS-19).

pub mod assign;
mod client;
pub mod cloudwatch;
pub(crate) mod coordinator;
mod efo;
mod error;
pub mod frame;
pub mod kpl;
pub mod lease;
pub mod lineage;
mod poll;
pub mod sequence;
pub(crate) mod shard;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema};
pub use error::KinesisError;

use super::position::PartitionPosition;
use super::{PlannedSource, Source, SourceError, SourceSpec, arrow_schema};
use crate::checkpoint::SourcePosition;
use crate::config::{Diagnostic, KinesisDecode, KinesisSourceConfig, KinesisStart, KinesisStream};
use crate::record::{Chunk, Origins, PartitionEvent, SourceSpan};

/// A planned Kinesis source.
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisSpec {
    /// Its settings.
    pub settings: KinesisSourceConfig,
    /// With leases: the one shard this source reads (a pipeline per held shard).
    pub lane: Option<ShardLane>,
}

/// The one shard a leased pipeline reads, until its end.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardLane {
    /// The shard.
    pub shard: String,
    /// Where it starts when its checkpoint holds no position (the lease's KCL checkpoint).
    pub start: PartitionPosition,
}

/// Plan a Kinesis source: the declared schema for JSON, the codec's columns otherwise.
pub fn plan(cfg: &KinesisSourceConfig, _diags: &mut [Diagnostic]) -> Option<PlannedSource> {
    let schema = match cfg.decode {
        KinesisDecode::Json => arrow_schema(cfg.schema.as_deref()?),
        KinesisDecode::CloudwatchLogs => cloudwatch::schema(),
        KinesisDecode::Lines => Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)])),
    };
    Some(PlannedSource {
        spec: Arc::new(KinesisSpec {
            settings: cfg.clone(),
            lane: None,
        }),
        schema,
    })
}

impl SourceSpec for KinesisSpec {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn kind(&self) -> &'static str {
        "kinesis"
    }

    fn id(&self) -> String {
        match &self.settings.stream {
            KinesisStream::Name(n) => format!("kinesis:{n}"),
            KinesisStream::Arn(a) => format!("kinesis:{}", a.rsplit('/').next().unwrap_or(a)),
        }
    }

    fn open(&self, stop: &Arc<AtomicBool>) -> Result<Box<dyn Source>, SourceError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-kinesis")
            .enable_all()
            .build()
            .map_err(|e| SourceError::Kinesis(KinesisError::Runtime(e.to_string())))?;
        Ok(Box::new(KinesisSource {
            settings: Arc::new(self.settings.clone()),
            lane: self.lane.clone(),
            lane_ended: false,
            runtime: Some(runtime),
            stop: stop.clone(),
            resumed: BTreeMap::new(),
            next_seq: 0,
            news: None,
            cursors: BTreeMap::new(),
            lag: Arc::default(),
            pending: VecDeque::new(),
            last_chunk: Instant::now(),
            reached_end: false,
        }))
    }
}

/// A Kinesis client for the source's region and endpoint.
pub async fn connect(settings: &KinesisSourceConfig) -> Result<aws_sdk_kinesis::Client, KinesisError> {
    client::connect(settings).await
}

/// A record as the stream handed it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Its sequence number (decimal text, up to 129 digits).
    pub sequence: String,
    /// The partition key it was put with.
    pub partition_key: String,
    /// Its data.
    pub data: Vec<u8>,
    /// `ApproximateArrivalTimestamp`, ms since the epoch (not monotonic, KDS-12).
    pub arrival_millis: Option<i64>,
}

/// Where a shard's reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record the shard holds.
    TrimHorizon,
    /// Just after the newest record, as of `opened_ms` (ms since the epoch): an iterator
    /// renewed before a record was read, and a restart, start at that time, so nothing put
    /// after the shard was opened is missed (never LATEST again).
    Latest {
        /// When the shard was opened.
        opened_ms: i64,
    },
    /// Records that arrived at or after this time (ms since the epoch).
    AtTimestamp(i64),
    /// After this record.
    After(String),
    /// At this record (the rest of a KPL aggregate read in part).
    At(String),
}

/// What the coordinator tells the pipeline's reader thread, per shard in the shard's order.
#[derive(Debug)]
pub(crate) enum News {
    /// A shard starts being read from `position` (its checkpointed one, or a sentinel);
    /// `retired` shards leave the checkpoint (all their children have started).
    Opened {
        shard: Arc<str>,
        position: PartitionPosition,
        skip: Option<(String, u64)>,
        retired: Vec<Arc<str>>,
    },
    /// Records of one response (possibly none), with the shard's lag.
    Records {
        shard: Arc<str>,
        records: Vec<StreamRecord>,
        millis_behind: Option<i64>,
        /// EFO's continuation: the shard's progress even without records (KDS-25).
        continuation: Option<String>,
    },
    /// The shard is closed and read to its end.
    Ended { shard: Arc<str> },
    /// Every shard we own has been read to the stream's tip (sent only with
    /// `end = "caught_up"`).
    CaughtUp,
    /// Reading cannot go on.
    Failed(KinesisError),
}

/// The position stored for a shard that has delivered nothing yet: KCL's sentinels, and
/// for a time the time itself (a shard opened at its tip stands at the time it was opened).
pub(crate) fn sentinel(start: &StartAt) -> PartitionPosition {
    let (sequence, at_ms) = match start {
        StartAt::TrimHorizon => ("TRIM_HORIZON".to_owned(), None),
        StartAt::Latest { opened_ms: t } | StartAt::AtTimestamp(t) => ("AT_TIMESTAMP".to_owned(), Some(*t)),
        StartAt::After(s) | StartAt::At(s) => (s.clone(), None),
    };
    PartitionPosition::Shard {
        sequence,
        sub_sequence: None,
        ended: false,
        at_ms,
    }
}

/// Now, in ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Where a shard with this checkpointed position starts, and the KPL sub-records to skip
/// (`None` for a shard read to its end).
pub(crate) fn start_of(position: &PartitionPosition, start: KinesisStart) -> Option<(StartAt, Option<(String, u64)>)> {
    let PartitionPosition::Shard {
        sequence,
        sub_sequence,
        ended,
        at_ms,
    } = position
    else {
        return None;
    };
    if *ended {
        return None;
    }
    Some(match (sequence.as_str(), sub_sequence) {
        ("TRIM_HORIZON", _) => (StartAt::TrimHorizon, None),
        ("LATEST", _) => (StartAt::Latest { opened_ms: now_ms() }, None),
        ("AT_TIMESTAMP", _) => match (*at_ms, start) {
            (Some(t), _) | (None, KinesisStart::AtTimestamp(t)) => (StartAt::AtTimestamp(t), None),
            _ => (StartAt::TrimHorizon, None),
        },
        (s, Some(sub)) => (StartAt::At(s.to_owned()), Some((s.to_owned(), *sub))),
        (s, None) => (StartAt::After(s.to_owned()), None),
    })
}

/// A Kinesis source being read.
struct KinesisSource {
    settings: Arc<KinesisSourceConfig>,
    /// The one shard read, with leases.
    lane: Option<ShardLane>,
    /// That shard was read to its end: the input ends after the chunks queued.
    lane_ended: bool,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Arc<AtomicBool>,
    /// Positions from the checkpoint.
    resumed: BTreeMap<String, PartitionPosition>,
    next_seq: u64,
    /// From the coordinator, once started.
    news: Option<tokio::sync::mpsc::Receiver<News>>,
    /// Per open shard: what to skip of a KPL aggregate read in part.
    cursors: BTreeMap<Arc<str>, frame::Cursor>,
    /// Each shard's last `MillisBehindLatest`.
    lag: Arc<Mutex<BTreeMap<String, i64>>>,
    /// Chunks cut from one large response, handed out one per call.
    pending: VecDeque<Chunk>,
    /// When the last chunk was handed out.
    last_chunk: Instant,
    /// Every shard was read to the tip (`end = "caught_up"`): the input ended.
    reached_end: bool,
}

/// A quiet stream still hands out an empty chunk this often, so checkpoints go on and
/// files past their `max_file_age` are sealed without waiting for the next record.
const QUIET_CHUNK: Duration = Duration::from_secs(1);

impl KinesisSource {
    fn start(&mut self) -> Result<(), SourceError> {
        let runtime = self.runtime.as_ref().ok_or(KinesisError::Runtime("stopped".into()))?;
        // Small buffers: a slow pipeline holds up the readers after a few responses.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let settings = self.settings.clone();
        let mut resumed = std::mem::take(&mut self.resumed);
        let stop = self.stop.clone();
        let client = runtime.block_on(client::connect(&settings))?;
        let assigner: Box<dyn assign::Assign> = match &self.lane {
            // The lease decided that this shard is ours and its parents are done: it starts
            // at its checkpoint, or where the lease says, whatever the lineage in this
            // pipeline's own checkpoint (which holds this shard alone).
            Some(lane) => {
                resumed.entry(lane.shard.clone()).or_insert_with(|| lane.start.clone());
                resumed.retain(|shard, _| *shard == lane.shard);
                Box::new(assign::OneShard(lane.shard.clone()))
            }
            None => Box::new(assign::AllShards),
        };
        runtime.spawn(coordinator::run(
            coordinator::Setup {
                client,
                settings,
                resumed,
                assigner,
                stop,
            },
            tx,
        ));
        self.news = Some(rx);
        Ok(())
    }

    /// The next message from the coordinator; `None` once asked to stop.
    fn next_news(&mut self) -> Option<News> {
        let (Some(runtime), Some(rx)) = (self.runtime.as_ref(), self.news.as_mut()) else {
            return None;
        };
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            // The timer is made inside the runtime, whose clock it needs.
            match runtime.block_on(async { tokio::time::timeout(Duration::from_millis(200), rx.recv()).await }) {
                Ok(news) => return news,
                Err(_elapsed) => continue,
            }
        }
    }

    /// A shard starts being read: its position (and retired parents) in a chunk of its own.
    fn opened(
        &mut self,
        shard: Arc<str>,
        position: PartitionPosition,
        skip: Option<(String, u64)>,
        retired: Vec<Arc<str>>,
    ) -> Chunk {
        let last = match &position {
            PartitionPosition::Shard { sequence, .. } if sequence.starts_with(|c: char| c.is_ascii_digit()) => {
                Some(sequence.clone())
            }
            _ => None,
        };
        self.cursors.insert(shard.clone(), frame::Cursor::new(skip, last));
        let mut chunk = self.chunk(&shard, frame::Piece::at(position));
        chunk.events.push(PartitionEvent::Opened(shard));
        chunk.retired = retired;
        chunk
    }

    /// One response's records as chunks (the first returned, the rest queued); `None` when
    /// there is nothing to hand out yet.
    fn records(
        &mut self,
        shard: &Arc<str>,
        records: &[StreamRecord],
        millis_behind: Option<i64>,
        continuation: Option<String>,
    ) -> Option<Chunk> {
        if let Some(ms) = millis_behind {
            self.lag.lock().map(|mut l| l.insert(shard.to_string(), ms)).ok();
        }
        let cursor = self
            .cursors
            .entry(shard.clone())
            .or_insert_with(|| frame::Cursor::new(None, None));
        let framer = frame::Framer {
            decode: self.settings.decode,
            batch_rows: self.settings.batch_rows,
            shard: shard.clone(),
        };
        let mut pieces = framer.frame(cursor, records);
        if pieces.is_empty()
            && let Some(c) = continuation
            && cursor.accepts(&c)
        {
            cursor.moved(&c);
            pieces.push(frame::Piece::at(PartitionPosition::Shard {
                sequence: c,
                sub_sequence: None,
                ended: false,
                at_ms: None,
            }));
        }
        if pieces.is_empty() {
            if self.last_chunk.elapsed() < QUIET_CHUNK {
                return None;
            }
            pieces.push(frame::Piece::default());
        }
        // Several pieces (a large response) come out one per call, in order.
        let mut chunks = pieces.into_iter().map(|p| self.chunk(shard, p));
        let first = chunks.next();
        let rest: Vec<Chunk> = chunks.collect();
        self.pending.extend(rest);
        first
    }

    /// A shard was read to its end.
    fn ended(&mut self, shard: Arc<str>) -> Chunk {
        self.cursors.remove(&shard);
        self.lag.lock().map(|mut l| l.remove(&*shard)).ok();
        let mut chunk = self.chunk(
            &shard,
            frame::Piece::at(PartitionPosition::Shard {
                sequence: "SHARD_END".to_owned(),
                sub_sequence: None,
                ended: true,
                at_ms: None,
            }),
        );
        chunk.events.push(PartitionEvent::Ended(shard));
        chunk
    }

    fn chunk(&mut self, shard: &Arc<str>, piece: frame::Piece) -> Chunk {
        self.last_chunk = Instant::now();
        let seq = self.next_seq;
        self.next_seq += 1;
        let count = piece.ends.len() as u64;
        Chunk {
            seq,
            span: SourceSpan {
                file: shard.clone(),
                first_line: 1,
                last_line: count,
                start_offset: 0,
                end_offset: piece.bytes,
            },
            data: piece.data,
            ends: piece.ends,
            origins: Origins::Each(piece.origins),
            ingest_micros: chrono::Utc::now().timestamp_micros(),
            rejected: piece.rejected,
            position: piece.position.map(|p| (shard.clone(), p.to_value())),
            ..Chunk::default()
        }
    }
}

impl KinesisSource {
    /// A leased shard whose checkpoint says it was read to its end: nothing to read.
    fn lane_done_before(&self) -> bool {
        self.news.is_none()
            && self.lane.as_ref().is_some_and(|l| {
                let p = self.resumed.get(&l.shard).unwrap_or(&l.start);
                matches!(p, PartitionPosition::Shard { ended: true, .. })
            })
    }
}

impl Source for KinesisSource {
    fn resume(&mut self, position: &SourcePosition) -> Result<(), SourceError> {
        self.next_seq = position.next_seq;
        for (shard, value) in &position.partitions {
            let p = PartitionPosition::from_value(shard, "kinesis", value)?;
            if !matches!(p, PartitionPosition::Shard { .. }) {
                return Err(SourceError::Position {
                    partition: shard.clone(),
                    kind: "kinesis",
                    message: format!("found {p:?}"),
                });
            }
            self.resumed.insert(shard.clone(), p);
        }
        Ok(())
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, SourceError> {
        if let Some(chunk) = self.pending.pop_front() {
            return Ok(Some(chunk));
        }
        if self.lane_ended || self.lane_done_before() {
            self.reached_end = true;
            return Ok(None);
        }
        if self.news.is_none() {
            self.start()?;
        }
        loop {
            let Some(news) = self.next_news() else {
                if self.stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                return Err(SourceError::Kinesis(KinesisError::Runtime(
                    "the stream's readers stopped without an error (a bug): stopping at the last checkpoint".into(),
                )));
            };
            match news {
                News::Opened {
                    shard,
                    position,
                    skip,
                    retired,
                } => return Ok(Some(self.opened(shard, position, skip, retired))),
                News::Records {
                    shard,
                    records,
                    millis_behind,
                    continuation,
                } => {
                    if let Some(chunk) = self.records(&shard, &records, millis_behind, continuation) {
                        return Ok(Some(chunk));
                    }
                }
                News::Ended { shard } => {
                    self.lane_ended = self.lane.as_ref().is_some_and(|l| *l.shard == *shard);
                    return Ok(Some(self.ended(shard)));
                }
                News::CaughtUp => {
                    self.reached_end = true;
                    tracing::info!("Every shard is read to the stream's tip (end = \"caught_up\").");
                    return Ok(None);
                }
                News::Failed(e) => return Err(SourceError::Kinesis(e)),
            }
        }
    }

    fn bounded(&self) -> bool {
        // Asked after the last chunk: a run stopped by a signal before the tip was reached
        // did not end.
        self.reached_end
    }

    fn lag(&self) -> BTreeMap<String, i64> {
        self.lag.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for KinesisSource {
    fn drop(&mut self) {
        self.news = None;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
