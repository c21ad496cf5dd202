//! The metrics a run records, as handles registered once per run (a pipeline, a stage, a
//! sink) so the hot path is an atomic add, never a lookup by name. Without an installed
//! exporter every handle is a no-op.
//!
//! Names follow Prometheus' conventions: `sluice_` prefix, base units (`_seconds`,
//! `_bytes`), counters end in `_total`. Labels are bounded: `pipeline`, `stage`, `sink`
//! (names from the pipeline file), `kind` and `reason` (fixed sets below), `partition`
//! (source partitions: files, shards, topics' partitions).

use std::collections::HashMap;

use super::tally::StageTally;
use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// Every metric's name.
pub mod name {
    /// Gauge, 1: the running binary (`version` label).
    pub const BUILD_INFO: &str = "sluice_build_info";
    /// Gauge, 1 for each stage's component (`component_sha256` label).
    pub const COMPONENT_INFO: &str = "sluice_component_info";
    /// Gauge: 1 while the pipeline runs, 0 once it stopped.
    pub const PIPELINE_RUNNING: &str = "sluice_pipeline_running";
    /// Counter: records read (decoded or not).
    pub const SOURCE_RECORDS: &str = "sluice_source_records_total";
    /// Counter: input bytes read.
    pub const SOURCE_BYTES: &str = "sluice_source_bytes_total";
    /// Counter: chunks (batches) cut from the input.
    pub const SOURCE_CHUNKS: &str = "sluice_source_chunks_total";
    /// Gauge per partition: how far behind its upstream's tip (Kinesis `MillisBehindLatest`).
    pub const SOURCE_LAG: &str = "sluice_source_lag_seconds";
    /// Gauge: input bytes left to read (file sources).
    pub const SOURCE_BACKLOG: &str = "sluice_source_backlog_bytes";
    /// Gauge: messages read and not yet acknowledged upstream (MQTT QoS 1).
    pub const SOURCE_IN_FLIGHT: &str = "sluice_source_in_flight_messages";
    /// Counter: rows given to a stage.
    pub const STAGE_RECORDS_IN: &str = "sluice_stage_records_in_total";
    /// Counter: rows a stage passed on to the next stage (its `main` output).
    pub const STAGE_RECORDS_OUT: &str = "sluice_stage_records_out_total";
    /// Counter: Arrow bytes given to a stage.
    pub const STAGE_BYTES_IN: &str = "sluice_stage_bytes_in_total";
    /// Counter: Arrow bytes a stage passed on.
    pub const STAGE_BYTES_OUT: &str = "sluice_stage_bytes_out_total";
    /// Counter: batches given to a stage.
    pub const STAGE_BATCHES: &str = "sluice_stage_batches_total";
    /// Histogram: time inside the component per call (bisection calls included).
    pub const STAGE_CALL_SECONDS: &str = "sluice_stage_call_duration_seconds";
    /// Counter: failed calls, by `kind` (see [`super::CallFailure`]).
    pub const STAGE_CALL_ERRORS: &str = "sluice_stage_call_errors_total";
    /// Counter: batches bisected to isolate failing rows.
    pub const STAGE_BISECTIONS: &str = "sluice_stage_bisections_total";
    /// Counter: times the stage was quarantined (the pipeline halts).
    pub const STAGE_QUARANTINES: &str = "sluice_stage_quarantines_total";
    /// Counter: times a stateful stage's state was rebuilt after a failure.
    pub const STAGE_REBUILDS: &str = "sluice_stage_state_rebuilds_total";
    /// Gauge: size of the stage's last snapshot.
    pub const STAGE_STATE_BYTES: &str = "sluice_stage_state_bytes";
    /// Counter: wasmtime fuel the stage's calls used (stages with `limits.fuel` only).
    pub const STAGE_FUEL: &str = "sluice_stage_fuel_consumed_total";
    /// Counter: dead letters, by `stage` and `reason` (see [`super::DeadReason`]).
    pub const DEAD_LETTERS: &str = "sluice_dead_letters_total";
    /// Counter: rows a sink wrote.
    pub const SINK_RECORDS: &str = "sluice_sink_records_total";
    /// Counter: files a sink published.
    pub const SINK_FILES: &str = "sluice_sink_files_total";
    /// Counter: bytes of the files a sink published.
    pub const SINK_BYTES: &str = "sluice_sink_bytes_total";
    /// Counter: checkpoints taken.
    pub const CHECKPOINTS: &str = "sluice_checkpoints_total";
    /// Histogram: time to take a checkpoint (sinks durable, checkpoint stored, files published).
    pub const CHECKPOINT_SECONDS: &str = "sluice_checkpoint_duration_seconds";
    /// Gauge: size of the last checkpoint.
    pub const CHECKPOINT_BYTES: &str = "sluice_checkpoint_size_bytes";
    /// Gauge: when the last checkpoint was taken, seconds since the epoch (its age is
    /// `time() - sluice_checkpoint_last_timestamp_seconds`).
    pub const CHECKPOINT_LAST: &str = "sluice_checkpoint_last_timestamp_seconds";
    /// Counter: reloads, by `outcome` (`applied`, `refused`).
    pub const RELOADS: &str = "sluice_reloads_total";
    /// Gauge, 1 for the last refused reload's `reason` (0 for the ones before it).
    pub const RELOAD_LAST_REFUSED: &str = "sluice_reload_last_refused_info";
    /// Counter: DynamoDB calls to the lease table, by `call`.
    pub const LEASE_CALLS: &str = "sluice_lease_calls_total";
    /// Gauge: leases this worker holds.
    pub const LEASES_HELD: &str = "sluice_leases_held";
}

/// Give every metric its help text and unit (once, when the exporter is installed).
pub fn describe() {
    use name::*;
    let counters: [(&str, Unit, &str); 18] = [
        (
            STAGE_FUEL,
            Unit::Count,
            "Fuel (about one unit per wasm instruction) a stage's calls used; stages with a fuel budget only.",
        ),
        (
            SOURCE_RECORDS,
            Unit::Count,
            "Records read from the source, decoded or not.",
        ),
        (SOURCE_BYTES, Unit::Bytes, "Input bytes read from the source."),
        (SOURCE_CHUNKS, Unit::Count, "Chunks (batches) cut from the input."),
        (STAGE_RECORDS_IN, Unit::Count, "Rows given to a transform stage."),
        (
            STAGE_RECORDS_OUT,
            Unit::Count,
            "Rows a transform stage passed on to the next stage.",
        ),
        (STAGE_BYTES_IN, Unit::Bytes, "Arrow bytes given to a transform stage."),
        (STAGE_BYTES_OUT, Unit::Bytes, "Arrow bytes a transform stage passed on."),
        (STAGE_BATCHES, Unit::Count, "Batches given to a transform stage."),
        (
            STAGE_CALL_ERRORS,
            Unit::Count,
            "Failed calls into a transform component, by kind.",
        ),
        (
            STAGE_BISECTIONS,
            Unit::Count,
            "Failed batches bisected to isolate the failing rows.",
        ),
        (
            STAGE_QUARANTINES,
            Unit::Count,
            "Times a stage was quarantined after consecutive failed batches.",
        ),
        (
            STAGE_REBUILDS,
            Unit::Count,
            "Times a stateful stage's state was rebuilt after a failure.",
        ),
        (
            DEAD_LETTERS,
            Unit::Count,
            "Records or rows sent to dead letters, by stage and reason.",
        ),
        (SINK_RECORDS, Unit::Count, "Rows written by a sink."),
        (SINK_FILES, Unit::Count, "Files a sink published."),
        (SINK_BYTES, Unit::Bytes, "Bytes of the files a sink published."),
        (CHECKPOINTS, Unit::Count, "Checkpoints taken."),
    ];
    for (name, unit, help) in counters {
        describe_counter!(name, unit, help);
    }
    describe_counter!(
        RELOADS,
        Unit::Count,
        "Reloads of the pipeline file or its components, by outcome."
    );
    describe_counter!(
        LEASE_CALLS,
        Unit::Count,
        "DynamoDB calls to the lease table ([source.leases]), by call."
    );
    metrics::describe_gauge!(LEASES_HELD, Unit::Count, "Shard leases this worker holds.");
    let gauges: [(&str, Unit, &str); 10] = [
        (
            SOURCE_IN_FLIGHT,
            Unit::Count,
            "Messages read and not yet acknowledged upstream (MQTT QoS 1).",
        ),
        (SOURCE_BACKLOG, Unit::Bytes, "Input bytes left to read (file sources)."),
        (BUILD_INFO, Unit::Count, "The running sluice binary (always 1)."),
        (
            COMPONENT_INFO,
            Unit::Count,
            "The component each stage runs (1 for the running one).",
        ),
        (
            PIPELINE_RUNNING,
            Unit::Count,
            "1 while the pipeline runs, 0 once it stopped.",
        ),
        (
            SOURCE_LAG,
            Unit::Seconds,
            "How far behind its upstream's tip a source partition is.",
        ),
        (
            STAGE_STATE_BYTES,
            Unit::Bytes,
            "Size of a stateful stage's last snapshot.",
        ),
        (CHECKPOINT_BYTES, Unit::Bytes, "Size of the last checkpoint."),
        (
            CHECKPOINT_LAST,
            Unit::Seconds,
            "When the last checkpoint was taken, in seconds since the epoch.",
        ),
        (
            RELOAD_LAST_REFUSED,
            Unit::Count,
            "The reason the last refused reload gave (1), earlier ones (0).",
        ),
    ];
    for (name, unit, help) in gauges {
        describe_gauge!(name, unit, help);
    }
    describe_histogram!(
        STAGE_CALL_SECONDS,
        Unit::Seconds,
        "Time inside a transform component per call."
    );
    describe_histogram!(CHECKPOINT_SECONDS, Unit::Seconds, "Time to take a checkpoint.");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// How a call into a component failed (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// It trapped (a bug or a memory limit).
    Trap,
    /// It ran past its deadline.
    Timeout,
    /// It refused its input.
    InvalidInput,
    /// It reported a failure on the batch.
    Failed,
    /// It broke the contract (undeclared output, wrong schema, unreadable IPC).
    BadOutput,
}

impl CallFailure {
    fn label(self) -> &'static str {
        match self {
            CallFailure::Trap => "trap",
            CallFailure::Timeout => "timeout",
            CallFailure::InvalidInput => "invalid_input",
            CallFailure::Failed => "failed",
            CallFailure::BadOutput => "bad_output",
        }
    }
}

/// Why rows went to dead letters (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadReason {
    /// The record could not be decoded into the source's schema.
    Decode,
    /// A transform rejected the rows.
    Rejected,
    /// A transform failed on the rows (trap, timeout, error).
    TransformError,
    /// A sink could not take the rows (a partition value it cannot write, say).
    SinkMisfit,
}

impl DeadReason {
    fn label(self) -> &'static str {
        match self {
            DeadReason::Decode => "decode",
            DeadReason::Rejected => "rejected",
            DeadReason::TransformError => "transform_error",
            DeadReason::SinkMisfit => "sink_misfit",
        }
    }
}

/// A transform stage's meters (one set per stage and worker; workers add to the same series),
/// and its tally for `sluice status`.
#[derive(Clone)]
pub struct StageMeters {
    pipeline: String,
    stage: String,
    records_in: Counter,
    records_out: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    batches: Counter,
    call_seconds: Histogram,
    bisections: Counter,
    quarantines: Counter,
    rebuilds: Counter,
    /// Registered at the first call that reports fuel (stages with a budget only).
    fuel: std::sync::OnceLock<Counter>,
    tally: std::sync::Arc<StageTally>,
}

impl std::fmt::Debug for StageMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StageMeters({}/{})", self.pipeline, self.stage)
    }
}

impl StageMeters {
    /// The meters of stage `stage` of pipeline `pipeline`.
    pub fn new(pipeline: &str, stage: &str) -> Self {
        let labels = [("pipeline", pipeline.to_owned()), ("stage", stage.to_owned())];
        StageMeters {
            pipeline: pipeline.to_owned(),
            stage: stage.to_owned(),
            records_in: counter!(name::STAGE_RECORDS_IN, &labels),
            records_out: counter!(name::STAGE_RECORDS_OUT, &labels),
            bytes_in: counter!(name::STAGE_BYTES_IN, &labels),
            bytes_out: counter!(name::STAGE_BYTES_OUT, &labels),
            batches: counter!(name::STAGE_BATCHES, &labels),
            call_seconds: histogram!(name::STAGE_CALL_SECONDS, &labels),
            bisections: counter!(name::STAGE_BISECTIONS, &labels),
            quarantines: counter!(name::STAGE_QUARANTINES, &labels),
            rebuilds: counter!(name::STAGE_REBUILDS, &labels),
            fuel: std::sync::OnceLock::new(),
            tally: super::tally::stage(pipeline, stage),
        }
    }

    /// Meters that record nothing (a stage outside a run, as in tests).
    pub fn detached() -> Self {
        StageMeters {
            pipeline: String::new(),
            stage: String::new(),
            records_in: Counter::noop(),
            records_out: Counter::noop(),
            bytes_in: Counter::noop(),
            bytes_out: Counter::noop(),
            batches: Counter::noop(),
            call_seconds: Histogram::noop(),
            bisections: Counter::noop(),
            quarantines: Counter::noop(),
            rebuilds: Counter::noop(),
            fuel: std::sync::OnceLock::from(Counter::noop()),
            tally: Default::default(),
        }
    }

    /// A batch of `rows` rows and `bytes` Arrow bytes came in.
    pub fn batch_in(&self, rows: u64, bytes: u64) {
        self.batches.increment(1);
        self.records_in.increment(rows);
        self.bytes_in.increment(bytes);
        self.tally.batch_in(rows);
    }

    /// `rows` rows of `bytes` Arrow bytes went on to the next stage.
    pub fn passed(&self, rows: u64, bytes: u64) {
        self.records_out.increment(rows);
        self.bytes_out.increment(bytes);
        self.tally.passed(rows);
    }

    /// A call into the component took `took`, and failed with `failure` if given (failures
    /// are rare: their series are registered on first use).
    pub fn call(&self, took: std::time::Duration, failure: Option<CallFailure>) {
        self.call_seconds.record(took.as_secs_f64());
        self.tally.call(took.as_nanos() as u64, failure.is_some());
        if let Some(kind) = failure.filter(|_| !self.stage.is_empty()) {
            counter!(name::STAGE_CALL_ERRORS, "pipeline" => self.pipeline.clone(), "stage" => self.stage.clone(), "kind" => kind.label())
                .increment(1);
        }
    }

    /// A call used `units` of fuel (stages with a fuel budget; registered on first use).
    pub fn fuel(&self, units: u64) {
        self.fuel
            .get_or_init(
                || counter!(name::STAGE_FUEL, "pipeline" => self.pipeline.clone(), "stage" => self.stage.clone()),
            )
            .increment(units);
    }

    /// A failed batch was bisected.
    pub fn bisected(&self) {
        self.bisections.increment(1);
    }

    /// The stage was quarantined.
    pub fn quarantined(&self) {
        self.quarantines.increment(1);
    }

    /// A stateful stage's state was rebuilt.
    pub fn rebuilt(&self) {
        self.rebuilds.increment(1);
    }
}

/// What a sink has reported so far, to count what it adds.
struct SinkMeters {
    records: Counter,
    files: Counter,
    bytes: Counter,
    seen: (u64, u64, u64),
}

/// A run's meters outside the stages: source, dead letters, sinks, checkpoints, state sizes.
/// Owned by the writer thread.
pub struct RunMeters {
    pipeline: String,
    running: Gauge,
    /// Records read.
    pub source_records: Counter,
    /// Input bytes read.
    pub source_bytes: Counter,
    /// Chunks read.
    pub source_chunks: Counter,
    /// Checkpoints taken.
    pub checkpoints: Counter,
    /// Time per checkpoint.
    pub checkpoint_seconds: Histogram,
    /// Size of the last one.
    pub checkpoint_bytes: Gauge,
    /// When the last one was taken.
    pub checkpoint_last: Gauge,
    dead: HashMap<(String, DeadReason), Counter>,
    sinks: HashMap<String, SinkMeters>,
    state: HashMap<String, Gauge>,
}

impl std::fmt::Debug for RunMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunMeters({})", self.pipeline)
    }
}

impl RunMeters {
    /// The meters of a run of `pipeline`; marks it running.
    pub fn start(pipeline: &str) -> Self {
        let p = [("pipeline", pipeline.to_owned())];
        let running = gauge!(name::PIPELINE_RUNNING, &p);
        running.set(1.0);
        RunMeters {
            pipeline: pipeline.to_owned(),
            running,
            source_records: counter!(name::SOURCE_RECORDS, &p),
            source_bytes: counter!(name::SOURCE_BYTES, &p),
            source_chunks: counter!(name::SOURCE_CHUNKS, &p),
            checkpoints: counter!(name::CHECKPOINTS, &p),
            checkpoint_seconds: histogram!(name::CHECKPOINT_SECONDS, &p),
            checkpoint_bytes: gauge!(name::CHECKPOINT_BYTES, &p),
            checkpoint_last: gauge!(name::CHECKPOINT_LAST, &p),
            dead: HashMap::new(),
            sinks: HashMap::new(),
            state: HashMap::new(),
        }
    }

    /// `count` rows of `stage` (`decode` for undecodable records) went to dead letters.
    pub fn dead_letters(&mut self, stage: &str, reason: DeadReason, count: u64) {
        if count == 0 {
            return;
        }
        let key = (stage.to_owned(), reason);
        let pipeline = &self.pipeline;
        self.dead
            .entry(key)
            .or_insert_with(|| {
                counter!(name::DEAD_LETTERS, "pipeline" => pipeline.clone(), "stage" => stage.to_owned(), "reason" => reason.label())
            })
            .increment(count);
    }

    /// Sink `sink` has written `records` rows and published `files` files of `bytes` bytes
    /// in all during this run (counts only grow; what is new since the last call is added).
    pub fn sink_totals(&mut self, sink: &str, records: u64, files: u64, bytes: u64) {
        let pipeline = &self.pipeline;
        let m = self.sinks.entry(sink.to_owned()).or_insert_with(|| {
            let labels = [("pipeline", pipeline.clone()), ("sink", sink.to_owned())];
            SinkMeters {
                records: counter!(name::SINK_RECORDS, &labels),
                files: counter!(name::SINK_FILES, &labels),
                bytes: counter!(name::SINK_BYTES, &labels),
                seen: (0, 0, 0),
            }
        });
        m.records.increment(records.saturating_sub(m.seen.0));
        m.files.increment(files.saturating_sub(m.seen.1));
        m.bytes.increment(bytes.saturating_sub(m.seen.2));
        m.seen = (m.seen.0.max(records), m.seen.1.max(files), m.seen.2.max(bytes));
    }

    /// Stage `stage` saved a snapshot of `bytes` bytes.
    pub fn state_bytes(&mut self, stage: &str, bytes: usize) {
        let pipeline = &self.pipeline;
        self.state
            .entry(stage.to_owned())
            .or_insert_with(
                || gauge!(name::STAGE_STATE_BYTES, "pipeline" => pipeline.clone(), "stage" => stage.to_owned()),
            )
            .set(bytes as f64);
    }

    /// A checkpoint of `bytes` bytes took `seconds`.
    pub fn checkpoint(&self, seconds: f64, bytes: usize) {
        self.checkpoints.increment(1);
        self.checkpoint_seconds.record(seconds);
        self.checkpoint_bytes.set(bytes as f64);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.checkpoint_last.set(now);
    }
}

impl Drop for RunMeters {
    fn drop(&mut self) {
        self.running.set(0.0);
    }
}

/// Stage `stage` of `pipeline` runs the component with this SHA-256.
pub fn component(pipeline: &str, stage: &str, sha256: &str) {
    gauge!(name::COMPONENT_INFO, "pipeline" => pipeline.to_owned(), "stage" => stage.to_owned(), "component_sha256" => sha256.to_owned())
        .set(1.0);
}

/// Stage `stage` of `pipeline` no longer runs the component with this SHA-256 (a reload
/// replaced it; [`component`] sets the running one back to 1 when it is unchanged).
pub fn component_retired(pipeline: &str, stage: &str, sha256: &str) {
    gauge!(name::COMPONENT_INFO, "pipeline" => pipeline.to_owned(), "stage" => stage.to_owned(), "component_sha256" => sha256.to_owned())
        .set(0.0);
}

/// `pipeline`'s source has `bytes` of input left to read.
pub fn source_backlog(pipeline: &str, bytes: u64) {
    gauge!(name::SOURCE_BACKLOG, "pipeline" => pipeline.to_owned()).set(bytes as f64);
}

/// `pipeline`'s source holds `messages` read and not yet acknowledged upstream.
pub fn source_in_flight(pipeline: &str, messages: u64) {
    gauge!(name::SOURCE_IN_FLIGHT, "pipeline" => pipeline.to_owned()).set(messages as f64);
}

/// Source partition `partition` of `pipeline` is `millis` behind its upstream's tip.
pub fn source_lag(pipeline: &str, partition: &str, millis: i64) {
    gauge!(name::SOURCE_LAG, "pipeline" => pipeline.to_owned(), "partition" => partition.to_owned())
        .set(millis as f64 / 1000.0);
}

/// A reload of `pipeline` was applied.
pub fn reload_applied(pipeline: &str) {
    counter!(name::RELOADS, "pipeline" => pipeline.to_owned(), "outcome" => "applied").increment(1);
}

/// A reload of `pipeline` was refused for `reason`; `previous` is the reason before it, if
/// any (its series drops to 0, so one series says 1 at any time).
pub fn reload_refused(pipeline: &str, reason: &str, previous: Option<&str>) {
    counter!(name::RELOADS, "pipeline" => pipeline.to_owned(), "outcome" => "refused").increment(1);
    if let Some(previous) = previous.filter(|p| *p != reason) {
        gauge!(name::RELOAD_LAST_REFUSED, "pipeline" => pipeline.to_owned(), "reason" => short(previous)).set(0.0);
    }
    gauge!(name::RELOAD_LAST_REFUSED, "pipeline" => pipeline.to_owned(), "reason" => short(reason)).set(1.0);
}

/// A reason as a label value: its first line, at most 200 characters.
fn short(reason: &str) -> String {
    reason.lines().next().unwrap_or_default().chars().take(200).collect()
}

/// A call to lease table `table`.
pub fn lease_call(table: &str, call: &'static str) {
    counter!(name::LEASE_CALLS, "table" => table.to_owned(), "call" => call).increment(1);
}

/// This worker holds `count` leases of `pipeline`.
pub fn leases_held(pipeline: &str, count: usize) {
    gauge!(name::LEASES_HELD, "pipeline" => pipeline.to_owned()).set(count as f64);
}
