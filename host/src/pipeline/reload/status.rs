//! What `sluice status` shows: the running plan (components and digests), each stage's rows
//! in and out and time inside its component, what was read and written and how fast, dead
//! letters by stage, each source partition's position, the last checkpoint, state sizes, the
//! reload counters and the last reload's result (kept across a restart-to-apply reload). A running pipeline serves it as one JSON
//! document on a Unix socket in the runtime folder (`SLUICE_RUNTIME_DIR`, else
//! `$XDG_RUNTIME_DIR/sluice`, else the temporary folder's `sluice-<uid>`), named after the
//! pipeline and its checkpoint store, so it works whatever the store (a remote one too); a
//! connection gets the document and is closed.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pipeline::Plan;

/// One stage as `sluice status` lists it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StageStatus {
    /// The transform's name.
    pub name: String,
    /// Where its component comes from (stock plugin or file).
    pub component: String,
    /// SHA-256 of the component.
    pub sha256: String,
    /// Whether it keeps state.
    pub stateful: bool,
    /// Bytes of its state at the last checkpoint (stateful stages).
    pub state_bytes: Option<usize>,
    /// Rows given to it since the process started (every worker's instances).
    #[serde(default)]
    pub rows_in: u64,
    /// Rows it passed on.
    #[serde(default)]
    pub rows_out: u64,
    /// Batches given to it.
    #[serde(default)]
    pub batches: u64,
    /// Milliseconds spent inside its component, all workers together.
    #[serde(default)]
    pub busy_ms: u64,
    /// Calls that failed.
    #[serde(default)]
    pub failed_calls: u64,
}

/// What the running pipeline has read and written since it (re)started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Flow {
    /// Unix time in milliseconds it (re)started.
    pub since_ms: i64,
    /// Records read.
    pub rows_read: u64,
    /// Input bytes read.
    pub bytes_read: u64,
    /// Records read per second over the last ten seconds or so.
    pub rows_per_second: f64,
    /// Each sink's rows and published files.
    pub sinks: Vec<SinkFlow>,
    /// Dead letters by the stage that sent them (`decode` for undecodable records).
    pub dead_letters: std::collections::BTreeMap<String, u64>,
    /// Each source partition's position after the last record written.
    pub positions: std::collections::BTreeMap<String, serde_json::Value>,
    /// The last checkpoint.
    pub checkpoint: Option<CheckpointFlow>,
}

/// One sink's output so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SinkFlow {
    /// Its name.
    pub name: String,
    /// Rows (or records) written.
    pub rows: u64,
    /// Files published.
    pub files: u64,
    /// Bytes of the files published.
    pub bytes: u64,
}

/// The last checkpoint taken.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointFlow {
    /// Checkpoints taken since the (re)start.
    pub taken: u64,
    /// Unix time in milliseconds of the last one.
    pub at_ms: i64,
    /// How long it took.
    pub took_ms: u64,
    /// Its size.
    pub bytes: u64,
}

/// The result of one reload attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadStatus {
    /// `applied`, `refused`, `unchanged` or `pending` (published, no chunk read since).
    pub outcome: String,
    /// The stages that changed, or the reason it was refused.
    pub detail: String,
    /// The generation it became (applied or pending).
    pub generation: Option<u64>,
    /// Unix time in milliseconds of the change that triggered it.
    pub changed_at_ms: i64,
    /// Milliseconds from noticing the change to the first chunk under the new version.
    pub took_ms: Option<u64>,
}

/// The whole document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Pipeline name.
    pub pipeline: String,
    /// Process id.
    pub pid: u32,
    /// The generation of the plan running now (0 = the one it started with).
    pub generation: u64,
    /// The stages running now.
    pub stages: Vec<StageStatus>,
    /// Reloads applied so far.
    pub reloads_applied: u64,
    /// Reloads refused so far.
    pub reloads_refused: u64,
    /// The last attempt.
    pub last_reload: Option<ReloadStatus>,
    /// Per source partition, milliseconds behind the upstream's tip (Kinesis shards).
    #[serde(default)]
    pub lag: std::collections::BTreeMap<String, i64>,
    /// What it has read and written.
    #[serde(default)]
    pub flow: Flow,
    /// With `[source.leases]`: the shards this worker holds and the table's other workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leases: Option<LeaseStatus>,
}

/// A leased worker's view of the lease table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseStatus {
    /// The table.
    pub table: String,
    /// This worker's id.
    pub worker: String,
    /// Shards held, and whether each is being read (a stolen one waits a failover time).
    pub owned: std::collections::BTreeMap<String, bool>,
    /// Every worker with unexpired leases, and how many live leases it holds.
    pub workers: std::collections::BTreeMap<String, usize>,
}

impl Status {
    /// The status of `plan` running as generation `generation`, keeping state sizes.
    pub fn set_plan(&mut self, plan: &Plan, generation: u64, components: &[String]) {
        let sizes: Vec<(String, Option<usize>)> = self.stages.iter().map(|s| (s.name.clone(), s.state_bytes)).collect();
        self.pipeline = plan.name.clone();
        self.pid = std::process::id();
        self.generation = generation;
        self.stages = plan
            .stages
            .iter()
            .zip(components.iter().map(String::as_str).chain(std::iter::repeat("")))
            .map(|(s, source)| StageStatus {
                name: s.name.clone(),
                component: source.to_owned(),
                sha256: s.component.digest().to_owned(),
                stateful: s.stateful(),
                state_bytes: sizes.iter().find(|(n, _)| *n == s.name).and_then(|(_, b)| *b),
                ..StageStatus::default()
            })
            .collect();
    }

    /// With each stage's counts as of now.
    fn with_counts(mut self) -> Status {
        for stage in &mut self.stages {
            if let Some(c) = crate::telemetry::tally::counts(&self.pipeline, &stage.name) {
                stage.rows_in = c.records_in;
                stage.rows_out = c.records_out;
                stage.batches = c.batches;
                stage.busy_ms = c.call_nanos / 1_000_000;
                stage.failed_calls = c.failed_calls;
            }
        }
        self
    }
}

/// The status shared by the run, the reload watcher and the socket.
pub type SharedStatus = Arc<Mutex<Status>>;

/// Update the shared status.
pub fn update(status: &SharedStatus, f: impl FnOnce(&mut Status)) {
    f(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
}

/// The socket of pipeline `pipeline` whose checkpoints are kept at `store` (a store's
/// location): `<name>-<12 hex digits of the store's SHA-256>.sock` in the runtime folder.
pub fn socket_path(pipeline: &str, store: &str) -> PathBuf {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(store.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let name: String = pipeline
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    runtime_dir().join(format!("{name}-{hex}.sock"))
}

fn runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_RUNTIME_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("sluice");
    }
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| std::os::unix::fs::MetadataExt::uid(&m));
    std::env::temp_dir().join(format!("sluice-{uid}"))
}

/// Serves the status until dropped; removes its socket then.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Listen on `path` (replacing a stale socket of a process that is gone).
    pub fn start(path: PathBuf, status: SharedStatus) -> std::io::Result<Server> {
        if let Some(dir) = path.parent() {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{} is served by another running sluice", path.display()),
                ));
            }
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("sluice-status".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let now = status.lock().unwrap_or_else(PoisonError::into_inner).clone();
                            let text = serde_json::to_string_pretty(&now.with_counts()).unwrap_or_default();
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.write_all(text.as_bytes());
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(Server { path, stop })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Ask the pipeline serving `path` for its status.
pub fn query(path: &Path) -> std::io::Result<Status> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
