//! The typed pipeline configuration: what the user wrote, with positions. Nothing here is
//! checked against data or plugins yet; that is the plan's job.

use std::path::PathBuf;

pub use sluice_contract::FieldType;

use super::plugin_config::PluginConfig;
use super::reader::Located;

/// A whole pipeline file.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// `[pipeline] name`, or the file stem.
    pub name: String,
    /// `[pipeline] workers`: parallel chain instances (default: the machine's cores).
    pub workers: Option<Located<u64>>,
    /// `[pipeline] max_dead_letter_ratio`: the share of records read that may become dead
    /// letters before the run stops (exit code 3).
    pub max_dead_letter_ratio: Option<f64>,
    /// `[source]`.
    pub source: SourceConfig,
    /// `[source] metadata`: columns with where each record came from.
    pub source_metadata: MetadataConfig,
    /// `[source] coerce` and `on_new_field`: how records are decoded.
    pub decoding: Decoding,
    /// `[[transform]]`, in order.
    pub transforms: Vec<TransformConfig>,
    /// `[sink]`, or each `[[sink]]` table, in order (never empty).
    pub sinks: Vec<SinkConfig>,
    /// `[dead_letter]`.
    pub dead_letter: DeadLetterConfig,
    /// `[checkpoint]`.
    pub checkpoint: CheckpointConfig,
    /// `[telemetry] listen`: where to serve Prometheus metrics (`/metrics`), if anywhere.
    pub metrics_listen: Option<Located<std::net::SocketAddr>>,
    /// `[[test]]`: test cases for `sluice test`.
    pub tests: Vec<super::cases::TestCase>,
}

/// `[source] coerce` and `on_new_field`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decoding {
    /// How exactly a JSON value must fit its column's type.
    pub coerce: Coerce,
    /// What a key outside the schema does; unset: dead letters for an inferred schema,
    /// ignored for a declared one.
    pub new_fields: Option<NewFields>,
}

/// `[source] coerce`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Coerce {
    /// A value must be of its column's JSON type and fit it exactly (the default).
    #[default]
    Strict,
    /// Numeric and boolean strings parse into numbers and booleans, and numbers and booleans
    /// into strings, as DuckDB's `read_json` does; still nothing is rounded or made infinite.
    Lenient,
}

/// `[source] on_new_field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewFields {
    /// Keys outside the schema are dropped.
    Ignore,
    /// A record with a key outside the schema is a dead letter.
    DeadLetter,
}

/// Where records come from.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// NDJSON files, a directory, a glob, or stdin (`-`).
    File(FileSourceConfig),
    /// JSON messages from an MQTT broker.
    Mqtt(Box<MqttSourceConfig>),
    /// Seeded synthetic records.
    Datagen(DatagenSourceConfig),
    /// Records of a Kinesis data stream.
    Kinesis(Box<KinesisSourceConfig>),
}

impl SourceConfig {
    /// Rows per batch.
    pub fn batch_rows(&self) -> usize {
        match self {
            SourceConfig::File(f) => f.batch_rows,
            SourceConfig::Mqtt(m) => m.batch_rows,
            SourceConfig::Datagen(g) => g.batch_rows,
            SourceConfig::Kinesis(k) => k.batch_rows,
        }
    }

    /// The declared schema, if any.
    pub fn schema(&self) -> Option<&[DeclaredField]> {
        match self {
            SourceConfig::File(f) => f.schema.as_deref(),
            SourceConfig::Mqtt(m) => Some(&m.schema),
            SourceConfig::Datagen(g) => g.schema.as_deref(),
            SourceConfig::Kinesis(k) => k.schema.as_deref(),
        }
    }
}

/// `[source] metadata = { file = "_file", topic = "_topic", partition = "_partition",
/// ingest_time = "_ingest_time" }`: the column each piece of record metadata goes in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataConfig {
    /// The file a record was read from.
    pub file: Option<Located<String>>,
    /// The topic a message was published to.
    pub topic: Option<Located<String>>,
    /// The source partition (file, broker, shard, generator partition).
    pub partition: Option<Located<String>>,
    /// When the record was read (a timestamp).
    pub ingest_time: Option<Located<String>>,
    /// A stream record's shard.
    pub shard: Option<Located<String>>,
    /// A stream record's sequence number (text: up to 129 digits).
    pub sequence: Option<Located<String>>,
    /// A stream record's partition key (a KPL user record's own).
    pub partition_key: Option<Located<String>>,
    /// When the stream received the record (its approximate arrival time).
    pub arrival: Option<Located<String>>,
}

/// `[source] type = "kinesis"` (see `source::kinesis`).
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisSourceConfig {
    /// `stream` or `stream_arn`: which stream.
    pub stream: KinesisStream,
    /// `region`; `None` takes the default region chain.
    pub region: Option<String>,
    /// `endpoint_url`: an emulator or a VPC endpoint.
    pub endpoint_url: Option<String>,
    /// `start`: where a run without a checkpoint begins.
    pub start: KinesisStart,
    /// `consumer`: polling (shared throughput) or enhanced fan-out.
    pub consumer: KinesisConsumer,
    /// `decode`: what a record's data holds.
    pub decode: KinesisDecode,
    /// `batch_rows`: user records per chunk at most.
    pub batch_rows: usize,
    /// `max_records`: GetRecords' `Limit` (1..=10000, default 10000).
    pub max_records: u32,
    /// `idle_poll`: how long a caught-up shard waits before asking again (default 1 s).
    pub idle_poll: std::time::Duration,
    /// `end = "caught_up"`: stop once every shard has been read to the stream's tip (a
    /// backfill); default `"never"`.
    pub end_caught_up: bool,
    /// `[source.schema]`: required for `json`; fixed by the codec otherwise.
    pub schema: Option<Vec<DeclaredField>>,
    /// `[source.leases]`: share the stream with other instances through a KCL lease table.
    pub leases: Option<LeaseConfig>,
}

/// `[source.leases]`: a DynamoDB lease table in KCL 2.x's layout decides which instance
/// reads which shard, and holds each shard's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// `table`: the lease table (created, on-demand, when missing).
    pub table: String,
    /// `worker_id`: this instance's name in `leaseOwner` (default: hostname and pid).
    pub worker_id: Option<String>,
    /// `failover`: KCL's `failoverTimeMillis`: a lease whose counter did not move for this
    /// long is expired; leases are renewed every third of it (default 10 s).
    pub failover: std::time::Duration,
    /// `max_leases`: the most shards this instance holds (0: no cap).
    pub max_leases: u32,
    /// `cleanup_after`: how long an ended shard's lease stays once every child has started
    /// from it, before it is deleted (KCL's `completedLeaseCleanupIntervalMillis`; default
    /// 5 min).
    pub cleanup_after: std::time::Duration,
    /// `region`: the table's region, when not the stream's.
    pub region: Option<String>,
    /// `endpoint_url`: DynamoDB's endpoint, when not the default (a Kinesis endpoint
    /// cannot serve DynamoDB, so the stream's `endpoint_url` is not used for the table).
    pub endpoint_url: Option<String>,
}

/// Which stream a Kinesis source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KinesisStream {
    /// `stream = "name"`.
    Name(String),
    /// `stream_arn = "arn:aws:kinesis:…:stream/name"`.
    Arn(String),
}

/// `start`: the position of a first run (a checkpoint always wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KinesisStart {
    /// `"trim_horizon"` (default): the oldest record the stream still holds.
    TrimHorizon,
    /// `"latest"`: records put after the start.
    Latest,
    /// `{ at_timestamp = "2026-01-01T00:00:00Z" }`: records that arrived at or after it
    /// (milliseconds since the epoch).
    AtTimestamp(i64),
}

/// `consumer`: how shards are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KinesisConsumer {
    /// `"polling"` (default): GetRecords, sharing the shard's 2 MiB/s with other readers.
    Polling,
    /// `{ efo = "name" }`: an enhanced fan-out consumer of that name, registered if absent.
    Efo(String),
}

/// `decode`: what a record's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KinesisDecode {
    /// `"json"` (default): one JSON document per user record.
    Json,
    /// `"cloudwatch_logs"`: a gzip CloudWatch Logs subscription envelope; one row per log
    /// event.
    CloudwatchLogs,
    /// `"lines"`: text; one row per line, in a `line` column.
    Lines,
}

/// `[source] type = "datagen"` (see `source::datagen`).
#[derive(Debug, Clone, PartialEq)]
pub struct DatagenSourceConfig {
    /// `template`: the records' shape.
    pub template: DatagenTemplate,
    /// `rows`: in all; `None` runs until stopped.
    pub rows: Option<u64>,
    /// `partitions` (default 1).
    pub partitions: u64,
    /// `rate`: rows per second at most, in all.
    pub rate: Option<u64>,
    /// `disorder`: how far behind its place a record's event time may be (default 0).
    pub disorder: std::time::Duration,
    /// `interval`: event time between records of a partition (default 1 s).
    pub interval: std::time::Duration,
    /// `start`: event time of the first records, µs since the epoch.
    pub start_micros: i64,
    /// `seed` (default 0).
    pub seed: u64,
    /// `batch_rows`.
    pub batch_rows: usize,
    /// `[source.schema]`, or the template's.
    pub schema: Option<Vec<DeclaredField>>,
}

/// The shapes `datagen` can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagenTemplate {
    /// Scenario 1's sensor readings.
    Sensors,
    /// Scenario 3's market ticks.
    Ticks,
}

impl DatagenTemplate {
    /// Its name in the pipeline file.
    pub fn name(self) -> &'static str {
        match self {
            DatagenTemplate::Sensors => "sensors",
            DatagenTemplate::Ticks => "ticks",
        }
    }
}

/// `[source] type = "mqtt"`.
#[derive(Debug, Clone)]
pub struct MqttSourceConfig {
    /// `url`: `mqtt://host:port` or `mqtts://host:port` (TLS).
    pub url: Located<String>,
    /// `topics`: topic filters, with `+`/`#` wildcards and `$share/<group>/…` shared
    /// subscriptions.
    pub topics: Located<Vec<String>>,
    /// `client_id`: the session's identity at the broker (default `sluice-<pipeline name>`).
    pub client_id: Option<String>,
    /// `qos`: 0 (at most once) or 1 (default: at least once from the broker, exactly once
    /// into the output).
    pub qos: u8,
    /// `clean_session` (default false: the broker keeps messages while we are down).
    pub clean_session: bool,
    /// `ca_file`, `cert_file`, `key_file`: PEM files for TLS and client certificates.
    pub ca_file: Option<Located<PathBuf>>,
    /// Client certificate chain.
    pub cert_file: Option<Located<PathBuf>>,
    /// Client private key.
    pub key_file: Option<Located<PathBuf>>,
    /// `username` / `password`.
    pub username: Option<String>,
    /// Password (with `username`).
    pub password: Option<String>,
    /// `topic_column`: put the topic (or one of its levels) in a column.
    pub topic_column: Option<TopicColumn>,
    /// `keep_alive` (default 30 s).
    pub keep_alive: std::time::Duration,
    /// `max_latency`: a batch is cut at most this long after its first message (default 1 s).
    pub max_latency: std::time::Duration,
    /// `batch_rows`: messages per batch at most.
    pub batch_rows: usize,
    /// `max_inflight`: the broker's window of unacknowledged QoS 1 messages (mosquitto's
    /// `max_inflight_messages`, default 20); a batch is cut when it holds half as many.
    pub max_inflight: usize,
    /// `max_message_bytes`: larger payloads are dead letters (default 1 MiB).
    pub max_message_bytes: usize,
    /// `include_retained`: keep retained messages the broker sends on subscribing (default
    /// false: they were published before and would be read again at every start).
    pub include_retained: bool,
    /// `connect_attempts`: attempts to make the first connection before the run stops
    /// (default 10, about a minute of backoff); once connected, a lost connection is
    /// retried for ever.
    pub connect_attempts: u32,
    /// `[source.schema]`, required: messages arrive after the run starts, so there is
    /// nothing to infer from.
    pub schema: Vec<DeclaredField>,
}

/// `topic_column = "topic"` or `topic_column = { name = "device", level = 1 }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicColumn {
    /// The column's name.
    pub name: String,
    /// A 0-based topic level (`streaming-data/{client_id}` → level 1 is the client id), or
    /// `None` for the whole topic.
    pub level: Option<usize>,
}

/// `[source] type = "file"`.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// What the user wrote for `path`.
    pub path: Located<String>,
    /// Resolved against the pipeline file's folder (absolute paths kept); `None` for stdin.
    pub resolved: Option<PathBuf>,
    /// Rows per batch.
    pub batch_rows: usize,
    /// The declared schema, or `None` to infer it from the first rows.
    pub schema: Option<Vec<DeclaredField>>,
    /// How many lines schema inference reads.
    pub infer_rows: usize,
    /// `max_open_files`: files read side by side (each its own partition).
    pub max_open_files: usize,
    /// `follow = true`: keep reading as files grow, appear and rotate.
    pub follow: Option<FollowConfig>,
}

/// How a followed file source watches its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowConfig {
    /// `poll_interval`: how often the path is looked at again for new, grown, rotated or
    /// truncated files (default 250 ms).
    pub poll_interval: std::time::Duration,
    /// `rotate_wait`: how long a file no longer at a followed path (renamed away or
    /// deleted) is still read after its last growth (default 5 s).
    pub rotate_wait: std::time::Duration,
}

/// One column of a declared schema.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredField {
    /// Column name.
    pub name: String,
    /// Its type.
    pub ty: Located<FieldType>,
    /// Whether nulls are allowed (default true).
    pub nullable: bool,
}

/// One `[[transform]]`.
#[derive(Debug, Clone)]
pub struct TransformConfig {
    /// `name`, unique in the pipeline.
    pub name: Located<String>,
    /// Which component runs it.
    pub plugin: Located<PluginRef>,
    /// Its `config` table.
    pub config: PluginConfig,
    /// What happens to a batch the transform fails on.
    pub on_error: OnError,
    /// `[transform.limits]`: overrides of the engine's per-instance limits.
    pub limits: LimitsConfig,
    /// Halt after this many consecutive batches that failed entirely (default 5).
    pub quarantine_after: u32,
    /// `watermark = { column, max_out_of_orderness, idle_timeout }`: the host tracks event
    /// time on this stage's input and advances its watermark between batches.
    pub watermark: Option<WatermarkConfig>,
    /// `sha256 = "…"` beside `component`: the file must have this digest to be loaded.
    pub sha256: Option<Located<String>>,
    /// `state = "discard"`: on a reload, a new version that refuses the running state starts
    /// empty instead of the reload being refused (default `"keep"`).
    pub discard_state: bool,
}

/// `[transform.watermark]`.
#[derive(Debug, Clone)]
pub struct WatermarkConfig {
    /// The event-time column of the stage's input (a timestamp, or int64 epoch milliseconds).
    pub column: Located<String>,
    /// How late (in event time) an event may arrive and still be on time (default 0).
    pub max_out_of_orderness: std::time::Duration,
    /// A source partition silent this long stops holding the watermark back (default: never).
    pub idle_timeout: Option<std::time::Duration>,
}

/// `on_error` of a transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Bisect the batch to find the failing rows; they become dead letters, the rest go on.
    DeadLetter,
    /// The whole batch becomes dead letters.
    SkipBatch,
    /// Stop the pipeline with an error.
    Halt,
}

/// `[transform.limits]`; `None` keeps the engine's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Linear memory cap in MiB.
    pub memory_mb: Option<u64>,
    /// Deadline for one call, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Output rows per call as a multiple of input rows.
    pub max_output_ratio: Option<u64>,
    /// A deterministic CPU budget per call, in wasmtime fuel units (about one per instruction).
    pub fuel: Option<u64>,
}

/// Where a transform's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginRef {
    /// A stock plugin shipped inside the binary (`plugin = "map"`).
    Stock(String),
    /// A component file (`component = "x.wasm"`), resolved against the pipeline's folder.
    File(PathBuf),
}

/// `[sink]`.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// `name`: the sink's name in checkpoints and messages (default `sink`, or `sink-<i>`
    /// for the i-th of several).
    pub name: Located<String>,
    /// `input`: what it writes: `source` (the records as received), a stage (its `main`
    /// output), `stage.output`; default the last stage's `main` output.
    pub input: Option<Located<String>>,
    /// `format`.
    pub format: SinkFormat,
    /// Where its files go: `path` (resolved against the pipeline file's folder) for a local
    /// sink, `bucket` and `prefix` for an S3 sink.
    pub place: Place,
    /// Bytes per multipart-upload part (`part_mb`; S3 sinks only).
    pub part_bytes: usize,
    /// `error_prefix`: the pipeline's dead letters go under this prefix of the sink's bucket
    /// (S3 sinks only).
    pub error_prefix: Option<Located<String>>,
    /// Parquet compression codec.
    pub compression: Compression,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// A file is closed once it reaches this size.
    pub target_file_bytes: u64,
    /// A file is closed at the first checkpoint after it is this old (so rows become visible).
    pub max_file_age: std::time::Duration,
    /// How rows are spread over folders.
    pub partition: PartitionConfig,
}

/// Where output files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A local folder.
    Local(PathBuf),
    /// A prefix of an S3 bucket.
    S3(S3Location),
    /// The terminal (a console sink): it keeps nothing; dead letters beside it go to stderr.
    Console,
}

impl Place {
    /// The same place one folder down (`name` is a folder name).
    pub fn join(&self, name: &str) -> Place {
        match self {
            Place::Local(p) => Place::Local(p.join(name)),
            Place::S3(loc) => Place::S3(S3Location {
                prefix: format!("{}{name}/", loc.prefix),
                ..loc.clone()
            }),
            Place::Console => Place::Console,
        }
    }

    /// Whether `other` lies strictly inside this place: a folder below this folder, or a
    /// longer key prefix in the same bucket (S3 prefixes are strings, so `out` holds `out2/`).
    pub fn holds(&self, other: &Place) -> bool {
        match (self, other) {
            (Place::Local(own), Place::Local(p)) => p != own && p.starts_with(own),
            (Place::S3(own), Place::S3(o)) => {
                o.bucket == own.bucket && o.prefix.len() > own.prefix.len() && o.prefix.starts_with(&own.prefix)
            }
            _ => false,
        }
    }

    /// The local folder, if it is one.
    pub fn local(&self) -> Option<&std::path::Path> {
        match self {
            Place::Local(p) => Some(p),
            Place::S3(_) | Place::Console => None,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Local(p) => write!(f, "{}", p.display()),
            Place::S3(loc) => f.write_str(&loc.url(&loc.prefix)),
            Place::Console => f.write_str("the console"),
        }
    }
}

/// What a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    /// Parquet files of rows.
    Parquet,
    /// The records as received, newline-delimited and gzip-compressed (an archive).
    Raw,
    /// Printed to stdout (`type = "console"`), for development.
    Console(ConsoleFormat),
}

/// How a console sink prints rows (`format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleFormat {
    /// One JSON object per row (nulls written out).
    Json,
    /// A table per batch.
    Table,
}

/// Parquet compression codecs on offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Snappy (default: fast, what Athena and Spark expect).
    Snappy,
    /// Zstandard, level 3.
    Zstd,
    /// None.
    None,
}

/// Time units a partition path can go down to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Granularity {
    /// `…year=`.
    Year,
    /// `…month=`.
    Month,
    /// `…day=`.
    Day,
    /// `…hour=`.
    Hour,
}

/// `[sink.partition]`.
#[derive(Debug, Clone)]
pub enum PartitionConfig {
    /// All files in the sink folder.
    None,
    /// By the time a batch was read: Glue's `ingest_year=/ingest_month=/ingest_day=/ingest_hour=`.
    IngestTime {
        /// How deep the folders go.
        granularity: Granularity,
        /// A strftime-like template replacing the default names.
        template: Option<Located<String>>,
    },
    /// By a timestamp column of the output: `year=/month=/day=/hour=`.
    EventTime {
        /// The timestamp column.
        column: Located<String>,
        /// How deep the folders go.
        granularity: Granularity,
        /// A strftime-like template replacing the default names.
        template: Option<Located<String>>,
    },
    /// By the value of a column: `ticker=AMZN`.
    Field {
        /// The column.
        column: Located<String>,
        /// Keep the column inside the files too (Hive convention: no).
        keep_column: bool,
    },
}

/// `[dead_letter]`.
#[derive(Debug, Clone)]
pub struct DeadLetterConfig {
    /// Where dead-letter JSON lines go: `path`, else the first sink's `error_prefix`, else
    /// `_dead_letter` inside the first sink's folder or prefix.
    pub place: Place,
}

/// `[checkpoint]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Whether the run checkpoints and resumes (default true; stdin input never resumes).
    pub enabled: bool,
    /// Folder of checkpoint files of the file store (default `<sink.path>/_checkpoints`;
    /// empty with an S3 store).
    pub path: PathBuf,
    /// Time between checkpoints (default 10 s).
    pub interval: std::time::Duration,
    /// `store`: where checkpoints are kept (default `"file"`, a local folder at `path`).
    pub store: StoreKind,
}

/// Kinds of checkpoint store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// Files in a local folder.
    File,
    /// Objects in S3 (`store = { s3 = "s3://bucket/prefix/" }`), so a pipeline can restart
    /// on another machine.
    S3(S3Location),
}

/// Where objects go in S3: a bucket, a key prefix, and how to reach them (`[checkpoint] store =
/// { s3 = "s3://bucket/prefix/" }` with its keys beside it, or a `type = "s3"` sink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix: empty, or ending in `/`.
    pub prefix: String,
    /// `region`; `None` takes the default region chain.
    pub region: Option<String>,
    /// `endpoint_url`: an S3-compatible server or a VPC endpoint.
    pub endpoint_url: Option<String>,
    /// `force_path_style`: `http://host/bucket/key` rather than `http://bucket.host/key`
    /// (most S3-compatible servers need it).
    pub force_path_style: bool,
}

impl S3Location {
    /// `s3://bucket/key`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, prefix: &str) -> Place {
        Place::S3(S3Location {
            bucket: bucket.into(),
            prefix: prefix.into(),
            region: None,
            endpoint_url: None,
            force_path_style: false,
        })
    }

    #[test]
    fn a_place_holds_what_lies_strictly_inside_it() {
        let out = s3("b", "crashy/out/");
        assert!(out.holds(&s3("b", "crashy/out/_dead_letter/")));
        assert!(!s3("b", "crashy/out/_dead_letter/").holds(&out), "the enclosing place");
        assert!(!out.holds(&out.clone()), "itself");
        assert!(!out.holds(&s3("other", "crashy/out/_dead_letter/")), "another bucket");
        assert!(!out.holds(&s3("b", "crashy/raw/")));
        assert!(s3("b", "out").holds(&s3("b", "out2/")), "S3 prefixes are strings");
        assert!(s3("b", "").holds(&s3("b", "x/")));
        let dir = Place::Local("/data/out".into());
        assert!(dir.holds(&Place::Local("/data/out/_dead_letter".into())));
        assert!(!dir.holds(&Place::Local("/data/out2".into())), "folders are components");
        assert!(!Place::Local("/data/out/_dead_letter".into()).holds(&dir));
        assert!(!dir.holds(&s3("b", "data/out/x/")));
    }
}
