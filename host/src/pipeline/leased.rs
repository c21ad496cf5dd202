//! Several instances of one pipeline sharing a Kinesis stream through a KCL lease table
//! (`[source.leases]`). This worker holds some of the shards' leases and runs one pipeline per
//! held shard: a [`Lane`] whose source reads that shard alone, whose files are named after
//! it, and whose checkpoints are written into the shard's lease, conditional on the lease
//! still being this worker's ([`LeaseStore`]).
//!
//! # The loop
//! Every third of `failover` the worker renews each lease it holds, scans the table, and
//! takes what the taker's rules say ([`balance`]); every minute (and when a held shard ends)
//! it creates leases for new shards ([`sync`]).
//!
//! # Exactly once across a takeover
//! - A shard's output becomes visible only after a checkpoint in its lease lists it, and that
//!   write succeeds only while this worker holds the lease at the counter it last saw. A worker
//!   that lost a lease cannot commit; it stops the shard's pipeline at once.
//! - A leased shard's checkpoint lists complete files only (each checkpoint completes the
//!   shard's files), so the next owner settles them by publishing, never by cutting back a
//!   file the previous owner may still be appending to.
//! - Temporary files are created anew (never truncated in place), so a previous owner that
//!   has not yet noticed its loss writes into its own unlinked copy.
//! - A worker stops a shard whose lease it could not renew for `failover` (by its own clock),
//!   and a lease taken from a live worker (a steal) starts being read only `failover` after the
//!   take, by which time the previous owner has failed a renewal and stopped.
//! - Recovery of a shard sees only that shard's files ([`crate::sink::storage::Lane`]).
//!
//! # State
//! Each shard's stateful stages keep their state in the shard's checkpoint: it moves with the
//! lease. A child shard starts from its parents' final state (`leased::inherit`): on a split
//! the keys of its hash range, on a merge both parents' keys (`leased::keyed`, through the
//! contract's `keyed-state`; a stateful stage without keyed state is refused at validate).

mod inherit;
mod keyed;
mod summary;

use summary::{empty_summary, merge};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::outcome::{RunError, RunOptions, RunSummary};
use super::plan::{Lane, Plan};
use super::reload::status::{LeaseStatus, Server, SharedStatus, socket_path, update};
use crate::config::LeaseConfig;
use crate::source::SourceError;
use crate::source::kinesis::lease::balance::{self, Rules, Watch};
use crate::source::kinesis::lease::cleanup;
use crate::source::kinesis::lease::item::Lease;
use crate::source::kinesis::lease::store::{Held, HeldLease, LeaseStore, position_of};
use crate::source::kinesis::lease::table::LeaseTable;
use crate::source::kinesis::lease::{self, LeaseError, sync};
use crate::source::kinesis::{KinesisError, KinesisSpec, ShardLane};

/// How often new shards are looked for without a held shard ending.
const SYNC_EVERY: Duration = Duration::from_secs(60);

/// Whether a plan's source shares its stream through leases.
pub fn leased(plan: &Plan) -> bool {
    spec(plan).is_some_and(|s| s.settings.leases.is_some() && s.lane.is_none())
}

fn spec(plan: &Plan) -> Option<&KinesisSpec> {
    plan.source.as_any().downcast_ref::<KinesisSpec>()
}

/// This worker's id when the pipeline file names none: the host's name and the process id.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "sluice".to_owned());
    format!("{host}-{}", std::process::id())
}

fn lease_err(e: LeaseError) -> RunError {
    match e {
        LeaseError::Stream(k) => RunError::Source(SourceError::Kinesis(k)),
        other => RunError::Source(SourceError::Kinesis(KinesisError::Runtime(other.to_string()))),
    }
}

/// A shard this worker holds.
struct Shard {
    held: HeldLease,
    /// The lease as it was taken.
    lease: Lease,
    run: Run,
    /// The shard run's own status (its lag).
    status: SharedStatus,
}

enum Run {
    /// Taken from a live worker: read from this time on.
    Waiting(Instant),
    Running {
        stop: Arc<AtomicBool>,
        handle: JoinHandle<Result<RunSummary, RunError>>,
    },
}

/// The worker's state.
struct Worker<'a> {
    plan: &'a Plan,
    spec: &'a KinesisSpec,
    settings: &'a LeaseConfig,
    me: String,
    runtime: tokio::runtime::Runtime,
    table: LeaseTable,
    kinesis: aws_sdk_kinesis::Client,
    shards: BTreeMap<String, Shard>,
    watch: Watch,
    started: Instant,
    options: &'a RunOptions,
    stop: Arc<AtomicBool>,
    summary: RunSummary,
    status: SharedStatus,
    last_sync: Instant,
    sync_due: bool,
    /// Ended leases every child has started from, and when this worker first saw them so.
    done_since: BTreeMap<String, Instant>,
}

/// Run a leased pipeline until stopped: hold leases, run their shards, give them up at the end.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<RunSummary, RunError> {
    let spec = spec(plan).ok_or_else(|| RunError::Thread("a leased run needs a Kinesis source".into()))?;
    let settings = spec
        .settings
        .leases
        .as_ref()
        .ok_or_else(|| RunError::Thread("a leased run needs [source.leases]".into()))?;
    let refuse = |message: &str| RunError::Checkpoint {
        location: format!("dynamodb://{}", settings.table),
        message: message.to_owned(),
    };
    if options.from_scratch {
        return Err(refuse(
            "--from-scratch does not apply to a lease table, which other instances share: delete the table (or name another) to read the stream from its start again",
        ));
    }
    if !plan.checkpoint.enabled {
        return Err(refuse(
            "[source.leases] keeps each shard's checkpoint in its lease: it cannot run with checkpoints off ([checkpoint] enabled = false, or --dry-run)",
        ));
    }
    if options.reload.is_some() {
        tracing::warn!(
            "Hot reload is not available with [source.leases] yet: restart the instances to apply a change."
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-leases")
        .enable_all()
        .build()
        .map_err(|e| RunError::Thread(format!("cannot start the lease runtime: {e}")))?;
    let (kinesis, dynamo) = runtime
        .block_on(async {
            Ok::<_, KinesisError>((
                crate::source::kinesis::connect(&spec.settings).await?,
                lease::connect(&spec.settings).await?,
            ))
        })
        .map_err(|e| RunError::Source(SourceError::Kinesis(e)))?;
    let table = LeaseTable::new(dynamo, settings.table.clone());
    let stop = options.stop.clone().unwrap_or_default();
    let me = settings.worker_id.clone().unwrap_or_else(default_worker_id);
    tracing::info!(worker = %me, table = %settings.table, "Sharing the stream through the lease table.");
    retry(&runtime, &stop, || table.ensure()).map_err(lease_err)?;
    let status: SharedStatus = options.status.clone().unwrap_or_default();
    update(&status, |s| s.set_plan(plan, 0, &options.components));
    let socket = socket_path(&plan.name, &crate::checkpoint::store::open(&plan.checkpoint).location());
    let _server = Server::start(socket, status.clone())
        .inspect_err(|e| tracing::warn!(error = %e, "`sluice status` is not served for this run."))
        .ok();
    let mut w = Worker {
        plan,
        spec,
        settings,
        me,
        runtime,
        table,
        kinesis,
        shards: BTreeMap::new(),
        watch: Watch::default(),
        started: Instant::now(),
        options,
        stop,
        summary: empty_summary(),
        status,
        last_sync: Instant::now(),
        sync_due: true,
        done_since: BTreeMap::new(),
    };
    let outcome = w.run_until_stopped();
    let ended = w.shut_down();
    outcome?;
    ended?;
    w.summary.elapsed = w.started.elapsed();
    w.summary.stopped = true;
    Ok(w.summary)
}

/// Call `f` until it succeeds, fails for good, or the run is stopped (then its last error).
fn retry<T, F, Fut>(runtime: &tokio::runtime::Runtime, stop: &AtomicBool, mut f: F) -> Result<T, LeaseError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, LeaseError>>,
{
    let mut backoff = crate::retry::Backoff::with(Duration::from_millis(200), Duration::from_secs(10))
        .until(Duration::from_secs(300));
    loop {
        match runtime.block_on(f()) {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable() && !stop.load(Ordering::Relaxed) => match backoff.next_delay() {
                Some(d) => {
                    tracing::warn!(error = %e, "The lease table did not answer; trying again.");
                    std::thread::sleep(d);
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

impl Worker<'_> {
    fn failover(&self) -> Duration {
        self.settings.failover
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn run_until_stopped(&mut self) -> Result<(), RunError> {
        let tick = self.failover() / 3;
        while !self.stop.load(Ordering::SeqCst) {
            let began = Instant::now();
            if self.sync_due || self.last_sync.elapsed() >= SYNC_EVERY {
                match self
                    .runtime
                    .block_on(sync::run(&self.kinesis, &self.table, &self.spec.settings, &self.stop))
                {
                    Ok(_) => {
                        self.sync_due = false;
                        self.last_sync = Instant::now();
                    }
                    Err(e) if e.retryable() => {
                        tracing::warn!(error = %e, "Looking for new shards failed; trying again.")
                    }
                    Err(e) => return Err(lease_err(e)),
                }
            }
            self.renew();
            self.reap()?;
            match self.runtime.block_on(self.table.scan()) {
                Ok(leases) => {
                    self.watch.observe(&leases, self.now_ms());
                    self.take(&leases);
                    self.publish_status(&leases);
                    self.clean_up(&leases);
                }
                Err(e) if e.retryable() => tracing::warn!(error = %e, "Scanning the lease table failed; trying again."),
                Err(e) => return Err(lease_err(e)),
            }
            self.start_waiting()?;
            // Wait out the tick, looking at finished shards and the stop flag meanwhile.
            while began.elapsed() < tick && !self.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                self.reap()?;
            }
        }
        Ok(())
    }

    /// Delete the ended leases every child has started from (`cleanup`), once they have been
    /// so for `cleanup_after` as this worker watched; any worker may, the delete is conditional
    /// on the lease as scanned.
    fn clean_up(&mut self, leases: &[Lease]) {
        let done = cleanup::done(leases);
        let now = Instant::now();
        self.done_since.retain(|key, _| done.iter().any(|l| &l.key == key));
        for lease in done {
            let since = *self.done_since.entry(lease.key.clone()).or_insert(now);
            if now.duration_since(since) < self.settings.cleanup_after {
                continue;
            }
            match self
                .runtime
                .block_on(self.table.delete_ended(&lease.key, lease.counter))
            {
                Ok(true) => {
                    tracing::info!(shard = %lease.key, "Deleted the ended shard's lease: its children started from it.")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(shard = %lease.key, error = %e, "Deleting an ended lease failed; trying again later.")
                }
            }
        }
    }

    /// Renew every held lease; stop the shards whose lease is gone.
    fn renew(&mut self) {
        let failover = self.failover();
        let mut lost = Vec::new();
        for (key, shard) in &self.shards {
            let mut held = shard.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if held.lost {
                lost.push(key.clone());
                continue;
            }
            match self.runtime.block_on(self.table.renew(key, &self.me, held.counter)) {
                Ok(Some(counter)) => {
                    held.counter = counter;
                    held.proven = Instant::now();
                }
                Ok(None) => {
                    tracing::info!(shard = %key, "The lease was taken by another worker; stopping the shard.");
                    held.lost = true;
                    lost.push(key.clone());
                }
                Err(e) => {
                    tracing::warn!(shard = %key, error = %e, "Renewing the lease failed.");
                    if held.proven.elapsed() >= failover {
                        tracing::warn!(shard = %key, "The lease could not be renewed for the failover time; stopping the shard.");
                        held.lost = true;
                        lost.push(key.clone());
                    }
                }
            }
        }
        // A running shard stops (and is reaped once its run ends); a waiting one just goes.
        for key in lost {
            match self.shards.get(&key).map(|s| &s.run) {
                Some(Run::Running { stop, .. }) => stop.store(true, Ordering::SeqCst),
                Some(Run::Waiting(_)) => drop(self.shards.remove(&key)),
                None => {}
            }
        }
    }

    /// Collect shard runs that finished: a shard read to its end gives up its lease; a run
    /// that failed with its lease still held fails the worker.
    fn reap(&mut self) -> Result<(), RunError> {
        let finished: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, s)| matches!(&s.run, Run::Running { handle, .. } if handle.is_finished()))
            .map(|(k, _)| k.clone())
            .collect();
        for key in finished {
            let Some(shard) = self.shards.remove(&key) else {
                continue;
            };
            let Run::Running { handle, .. } = shard.run else {
                continue;
            };
            let result = handle
                .join()
                .map_err(|_| RunError::Thread(format!("the run of {key} panicked")))?;
            let lost = lost(&shard.held);
            match result {
                Ok(summary) => {
                    let ended = !summary.stopped;
                    merge(&mut self.summary, summary);
                    if ended {
                        tracing::info!(shard = %key, "Shard read to its end; its lease says SHARD_END.");
                        self.sync_due = true;
                    }
                    if !lost {
                        self.release(&key, &shard.held);
                    }
                }
                Err(e) if lost => {
                    tracing::info!(shard = %key, error = %e, "The shard's lease moved on; what was not committed here is discarded.");
                }
                Err(e) => {
                    self.release(&key, &shard.held);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn release(&self, key: &str, held: &HeldLease) {
        let counter = held.lock().map(|h| h.counter).unwrap_or(0);
        match self.runtime.block_on(self.table.release(key, &self.me, counter)) {
            Ok(true) => tracing::info!(shard = %key, "Gave up the lease."),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(shard = %key, error = %e, "Giving up the lease failed; it expires after the failover time.")
            }
        }
    }

    /// Take what the rules say after a scan.
    fn take(&mut self, leases: &[Lease]) {
        let held: BTreeSet<String> = self.shards.keys().cloned().collect();
        let rules = Rules {
            me: &self.me,
            failover_ms: self.failover().as_millis() as u64,
            max_leases: self.settings.max_leases as usize,
        };
        let choice = balance::choose(leases, &self.watch, &held, rules, self.now_ms());
        let by_key: BTreeMap<&str, &Lease> = leases.iter().map(|l| (l.key.as_str(), l)).collect();
        let picks = choice
            .take
            .iter()
            .map(|k| (k, false))
            .chain(choice.steal.iter().map(|k| (k, true)));
        for (key, steal) in picks {
            let Some(lease) = by_key.get(key.as_str()) else {
                continue;
            };
            match self.runtime.block_on(self.table.take(lease, &self.me)) {
                Ok(Some(counter)) => {
                    let from = lease.owner.clone().unwrap_or_else(|| "nobody".into());
                    tracing::info!(shard = %key, from = %from, steal, "Took the lease.");
                    let wait = if steal { self.failover() } else { Duration::ZERO };
                    self.shards.insert(
                        key.clone(),
                        Shard {
                            held: Arc::new(Mutex::new(Held {
                                counter,
                                lost: false,
                                proven: Instant::now(),
                            })),
                            lease: (*lease).clone(),
                            run: Run::Waiting(Instant::now() + wait),
                            status: SharedStatus::default(),
                        },
                    );
                }
                Ok(None) => tracing::debug!(shard = %key, "Another worker took the lease first."),
                Err(e) => tracing::warn!(shard = %key, error = %e, "Taking the lease failed."),
            }
        }
    }

    /// Start the runs of held shards whose wait is over.
    fn start_waiting(&mut self) -> Result<(), RunError> {
        let due: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, s)| matches!(s.run, Run::Waiting(at) if Instant::now() >= at))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(lease) = self.shards.get(&key).map(|s| s.lease.clone()) else {
                continue;
            };
            let inherited = self.inherit(&lease)?;
            let Some(shard) = self.shards.get_mut(&key) else {
                continue;
            };
            let plan = lane_plan(
                self.plan,
                self.spec,
                &shard.lease,
                (&self.table, &self.runtime, &self.me),
                (&shard.held, inherited),
            );
            let stop = Arc::new(AtomicBool::new(false));
            let options = RunOptions {
                progress: false,
                from_scratch: false,
                stop: Some(stop.clone()),
                reload: None,
                reload_changes: Default::default(),
                status: Some(shard.status.clone()),
                components: self.options.components.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("sluice-{key}"))
                .spawn(move || super::run::run(&plan, &options))
                .map_err(|e| RunError::Thread(format!("cannot start the run of {key}: {e}")))?;
            tracing::info!(shard = %key, "Reading the shard.");
            shard.run = Run::Running { stop, handle };
        }
        Ok(())
    }

    /// What `sluice status` shows of the leases.
    fn publish_status(&self, leases: &[Lease]) {
        let mut workers: BTreeMap<String, usize> = BTreeMap::new();
        for l in leases.iter().filter(|l| !l.ended()) {
            if let Some(o) = &l.owner
                && !self.watch.expired(l, self.now_ms(), self.failover().as_millis() as u64)
            {
                *workers.entry(o.clone()).or_default() += 1;
            }
        }
        let mut lag = BTreeMap::new();
        for shard in self.shards.values() {
            lag.extend(shard.status.lock().map(|s| s.lag.clone()).unwrap_or_default());
        }
        let owned = self
            .shards
            .iter()
            .map(|(k, s)| (k.clone(), matches!(s.run, Run::Running { .. })))
            .collect();
        crate::telemetry::meters::leases_held(&self.plan.name, self.shards.len());
        update(&self.status, |s| {
            s.lag = lag;
            s.leases = Some(LeaseStatus {
                table: self.table.name().to_owned(),
                worker: self.me.clone(),
                owned,
                workers,
            });
        });
    }

    /// Stop every shard (each commits a final checkpoint into its lease) and give the leases
    /// up, so other workers take them at once.
    fn shut_down(&mut self) -> Result<(), RunError> {
        for shard in self.shards.values() {
            if let Run::Running { stop, .. } = &shard.run {
                stop.store(true, Ordering::SeqCst);
            }
        }
        let mut first_error = None;
        for (key, shard) in std::mem::take(&mut self.shards) {
            let outcome = match shard.run {
                Run::Running { handle, .. } => handle.join().ok(),
                Run::Waiting(_) => Some(Ok(empty_summary())),
            };
            // Read after the run ended: its final checkpoint may have found the lease gone.
            let lost = lost(&shard.held);
            match outcome {
                Some(Ok(summary)) => merge(&mut self.summary, summary),
                Some(Err(e)) if !lost => first_error = first_error.or(Some(e)),
                Some(Err(_)) => {}
                None => first_error = first_error.or(Some(RunError::Thread(format!("the run of {key} panicked")))),
            }
            if !lost {
                self.release(&key, &shard.held);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Whether a held lease was found gone (a poisoned lock counts as gone: commit nothing).
fn lost(held: &HeldLease) -> bool {
    held.lock().map(|h| h.lost).unwrap_or(true)
}

/// The plan of one held shard's run.
fn lane_plan(
    plan: &Plan,
    spec: &KinesisSpec,
    lease: &Lease,
    (table, runtime, me): (&LeaseTable, &tokio::runtime::Runtime, &str),
    (held, inherited): (&HeldLease, Option<Vec<u8>>),
) -> Plan {
    let mut p = plan.clone();
    let shard = lease.key.clone();
    p.source = Arc::new(KinesisSpec {
        settings: spec.settings.clone(),
        lane: Some(ShardLane {
            shard: shard.clone(),
            start: position_of(&lease.checkpoint, lease.sub_sequence),
        }),
    });
    let (table, handle, me, held) = (table.clone(), runtime.handle().clone(), me.to_owned(), held.clone());
    let name = shard.clone();
    p.lane = Some(Lane {
        name,
        store: Arc::new(move || {
            Box::new(
                LeaseStore::new(table.clone(), handle.clone(), shard.clone(), me.clone(), held.clone())
                    .inheriting(inherited.clone()),
            )
        }),
    });
    p
}
