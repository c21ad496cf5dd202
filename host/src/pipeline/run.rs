//! The running pipeline: a reader thread cuts the input into numbered chunks, worker threads
//! decode and transform them in parallel, and the calling thread writes results in input
//! order (so output names and contents do not depend on thread timing).
//!
//! Back-pressure: at most `2 × workers + 2` chunks are in flight (read but not yet written)
//! at any time, held by a permit the writer returns; memory is bounded whatever the input.
//!
//! Checkpoints: the reader marks a chunk as a barrier every interval; once the writer has
//! written that chunk's output it takes a checkpoint (see `checkpoint`). A run resumes from
//! the latest checkpoint. A stop request (SIGTERM/SIGINT) ends reading at a chunk boundary;
//! what is in flight is written, stateful stages keep (not flush) what they hold, and a
//! final checkpoint records it all.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

use super::commit::{Committer, Cut};
use super::plan::Plan;
use super::reload::status::{Server, SharedStatus, socket_path, update};
use super::reload::watch::{NextPlan, ReloadSettings, Reloader};
use super::reload::{Generations, SwapReport};
use super::resume::prepare;
use super::sinks::{self, Opened, Tap};
use super::worker::{Aside, WorkResult, Worker, WorkerError};
use crate::checkpoint::protocol::{BarrierClock, StageChanges};
use crate::checkpoint::store;
use crate::checkpoint::{SourcePosition, StageState, Totals, WatermarkState};
use crate::record::{Chunk, SourceSpan};
use crate::sink::dead_letter::DeadLetterSummary;
use crate::sink::recover::RecoverError;
use crate::sink::{FileStart, SinkError, SinkInput, SinkReport, TwoPhase, WriteAt, WrittenFile};
use crate::source::{Acknowledge, Source, SourceError};

/// How a run behaves.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show a progress line on stderr (when it is a terminal).
    pub progress: bool,
    /// Ignore the checkpoint and read the input from the beginning.
    pub from_scratch: bool,
    /// Set (e.g. by a signal handler) to stop at the next chunk boundary with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
    /// Watch the pipeline file and its components, and swap in changed versions.
    pub reload: Option<ReloadSettings>,
    /// Stateful stages the reload that asked for this run added or removed.
    pub stage_changes: StageChanges,
}

/// Why a run stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading the input failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A worker could not continue (e.g. a transform cannot be re-instantiated).
    #[error("{0}")]
    Worker(String),
    /// Writing output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A checkpoint could not be read, applied or written.
    #[error("checkpoint {location}: {message}")]
    Checkpoint {
        /// The checkpoint folder.
        location: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Settling the output of an interrupted run failed.
    #[error("recovering the output of an interrupted run: {0}")]
    Recover(#[from] RecoverError),
}

/// What a finished run did.
#[derive(Debug)]
pub struct RunSummary {
    /// Input lines that held a record.
    pub rows_read: u64,
    /// Input bytes.
    pub bytes_read: u64,
    /// Rows written by the first sink.
    pub rows_written: u64,
    /// Files the first sink published.
    pub files: Vec<WrittenFile>,
    /// What every sink wrote, in the pipeline file's order.
    pub sinks: Vec<SinkReport>,
    /// Dead letters written.
    pub dead_letters: DeadLetterSummary,
    /// Wall time.
    pub elapsed: Duration,
    /// The checkpoint this run resumed from.
    pub resumed_from: Option<u64>,
    /// Checkpoints this run wrote, and the slowest one's duration.
    pub checkpoints: u64,
    /// Duration of the slowest checkpoint.
    pub slowest_checkpoint: Duration,
    /// The run was asked to stop before the end of its input.
    pub stopped: bool,
    /// Size of each stateful stage's final snapshot, in bytes.
    pub state_bytes: Vec<(String, usize)>,
    /// A reload asked to start again from the final checkpoint with this plan.
    pub restart_with: Option<NextPlan>,
}

impl RunSummary {
    /// Distinct partition folders written.
    pub fn partitions(&self) -> usize {
        self.files
            .iter()
            .map(|f| f.partition.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    }
}

enum Msg {
    Done(Box<WorkResult>),
    Failed(String),
}

/// Run a plan to the end of its input (or until asked to stop), resuming from its checkpoint.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let checkpointing = plan.checkpoint.enabled && plan.source.resumable();
    let opened = sinks::open(
        &plan.sinks,
        &plan.dead_letter_dir,
        &plan.checkpoint.path,
        !checkpointing,
    )?;
    let start = prepare(plan, options.from_scratch, &opened.targets(), &options.stage_changes)?;
    let resumed_from = start.resumed.as_ref().map(|(epoch, _)| *epoch);
    let committer = Committer::new(plan, start.store, start.epoch);
    let in_flight = 2 * plan.workers + 2;
    let (permit_tx, permit_rx) = bounded::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = permit_tx.send(());
    }
    let (chunk_tx, chunk_rx) = bounded(in_flight);
    let (result_tx, result_rx) = unbounded::<Msg>();

    let ended = Arc::new(AtomicBool::new(false));
    let stop = options.stop.clone().unwrap_or_default();
    // A reload that needs a restart stops this run like a signal, but only this one.
    let restart = options.reload.as_ref().map(|r| r.restart.clone()).unwrap_or_default();
    let stop_reading = {
        let (stop, requested) = (stop.clone(), restart.requested.clone());
        move || stop.load(Ordering::SeqCst) || requested.load(Ordering::SeqCst)
    };
    let mut source = plan.source.open(&stop)?;
    source.resume(&start.position)?;
    let acks = source.acknowledger();
    // A source that acknowledges what is committed checkpoints after every chunk: its
    // chunks are cut by size, latency or the broker's in-flight window.
    let every_chunk = acks.is_some();
    let interval = plan.checkpoint.interval;
    let generations = Generations::new(Arc::new(plan.clone()));
    let status: SharedStatus = Arc::default();
    let components: Vec<(String, Option<std::path::PathBuf>)> = options
        .reload
        .as_ref()
        .map(|r| r.components.clone())
        .unwrap_or_default();
    update(&status, |s| {
        s.set_plan(plan, 0, &components.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>());
    });
    let socket = socket_path(&plan.name, &store::open(&plan.checkpoint).location());
    let _status_server = match Server::start(socket, status.clone()) {
        Ok(server) => Some(server),
        Err(e) => {
            tracing::warn!(error = %e, "`sluice status` is not served for this run.");
            None
        }
    };
    let (report_tx, report_rx) = unbounded::<SwapReport>();
    let reloading = Arc::new(AtomicBool::new(false));
    let reloader = match &options.reload {
        Some(settings) => {
            let reloader = Reloader::new(
                settings.clone(),
                generations.clone(),
                report_rx,
                status.clone(),
                &components,
            );
            let done = reloading.clone();
            Some(
                std::thread::Builder::new()
                    .name("sluice-reload".into())
                    .spawn(move || reloader.run(&done))
                    .map_err(|e| RunError::Worker(format!("cannot start the reload thread: {e}")))?,
            )
        }
        None => None,
    };
    let reader = {
        let ended = ended.clone();
        let stop_reading = stop_reading.clone();
        let generations = generations.clone();
        std::thread::Builder::new()
            .name("sluice-read".into())
            .spawn(move || -> Result<Box<dyn Source>, SourceError> {
                let mut clock = BarrierClock::new(interval, Instant::now());
                while !stop_reading() && permit_rx.recv().is_ok() && !stop_reading() {
                    let Some(mut chunk) = source.next_chunk()? else {
                        ended.store(source.bounded(), Ordering::SeqCst);
                        break;
                    };
                    chunk.barrier = checkpointing && (every_chunk || clock.due(Instant::now()));
                    chunk.generation = generations.current();
                    if chunk_tx.send(chunk).is_err() {
                        break;
                    }
                }
                Ok(source)
            })
    };
    let reader = reader.map_err(|e| RunError::Worker(format!("cannot start the reader thread: {e}")))?;

    let mut handles = Vec::new();
    for id in 0..plan.workers {
        let plan = plan.clone();
        let rx = chunk_rx.clone();
        let tx = result_tx.clone();
        let states = start.states.clone();
        let watermarks = start.watermarks.clone();
        let ended = ended.clone();
        let reload = (generations.clone(), report_tx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("sluice-work-{id}"))
            .spawn(move || work(&plan, id, (&states, &watermarks), rx, tx, &ended, &reload));
        handles.push(spawned.map_err(|e| RunError::Worker(format!("cannot start a worker thread: {e}")))?);
    }
    drop(chunk_rx);
    drop(result_tx);
    drop(report_tx);

    let writer = Writer {
        out: opened,
        committer,
        status: status.clone(),
        acks,
        last_chunk: None,
        position: start.position,
        earlier: start.totals,
        rows_read: 0,
        bytes_read: 0,
        rows_written: 0,
    };
    let outcome = write_results(plan, options, writer, result_rx, permit_tx, started, &ended);
    for h in handles {
        let _ = h.join();
    }
    reloading.store(true, Ordering::SeqCst);
    if let Some(r) = reloader {
        let _ = r.join();
    }
    let read = reader
        .join()
        .map_err(|_| RunError::Worker("the reader thread panicked".into()))?;
    let mut summary = outcome?;
    // Dropped only now, after the final checkpoint: its PUBACKs leave before the DISCONNECT.
    drop(read?);
    summary.elapsed = started.elapsed();
    summary.resumed_from = resumed_from;
    summary.stopped = stop_reading() && !ended.load(Ordering::SeqCst);
    if summary.stopped && !stop.load(Ordering::SeqCst) {
        summary.restart_with = restart
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
    Ok(summary)
}

fn work(
    plan: &Plan,
    id: usize,
    (states, watermarks): (&[Option<StageState>], &[WatermarkState]),
    chunks: Receiver<Chunk>,
    results: Sender<Msg>,
    ended: &AtomicBool,
    (generations, reports): &(Arc<Generations>, Sender<SwapReport>),
) {
    let fail = |e: WorkerError| {
        let _ = results.send(Msg::Failed(e.to_string()));
    };
    let mut worker = match Worker::new(plan, id, states, watermarks) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut last: Option<(SourceSpan, i64)> = None;
    let mut generation = 0;
    for chunk in chunks {
        last = Some((chunk.span.clone(), chunk.ingest_micros));
        if chunk.generation != generation {
            generation = chunk.generation;
            let swap_started = Instant::now();
            let outcome = worker.swap(&generations.plan(generation), id);
            let _ = reports.send(SwapReport {
                generation,
                first_chunk: chunk.seq,
                swap_micros: swap_started.elapsed().as_micros() as u64,
                outcome,
            });
        }
        match worker.process(chunk) {
            Ok(r) => {
                if results.send(Msg::Done(Box::new(r))).is_err() {
                    return;
                }
            }
            Err(e) => return fail(e),
        }
    }
    // Final results are numbered after all input, by worker id, and cover no input bytes.
    let (mut span, ingest) = last.unwrap_or_else(|| (SourceSpan::default(), chrono::Utc::now().timestamp_micros()));
    span.start_offset = span.end_offset;
    let flush = ended.load(Ordering::SeqCst);
    match worker.finish(u64::MAX - plan.workers as u64 + id as u64, span, ingest, flush) {
        Ok(r) => {
            let _ = results.send(Msg::Done(Box::new(r)));
        }
        Err(e) => fail(e),
    }
}

struct Writer {
    out: Opened,
    committer: Committer,
    /// What `sluice status` shows (state sizes are updated at checkpoints).
    status: SharedStatus,
    /// Message sources: acknowledges what each checkpoint commits.
    acks: Option<Box<dyn Acknowledge>>,
    /// The last input chunk written.
    last_chunk: Option<u64>,
    /// Where the input after everything written so far begins.
    position: SourcePosition,
    /// Totals of earlier runs.
    earlier: Totals,
    rows_read: u64,
    bytes_read: u64,
    rows_written: u64,
}

impl Writer {
    fn totals(&self) -> Totals {
        Totals {
            rows_read: self.earlier.rows_read + self.rows_read,
            rows_written: self.earlier.rows_written + self.rows_written,
            dead_letters: self.earlier.dead_letters + self.out.dead.count(),
        }
    }

    /// Checkpoint everything written so far.
    fn checkpoint(
        &mut self,
        finished: bool,
        states: Vec<StageState>,
        watermarks: Vec<WatermarkState>,
    ) -> Result<(), RunError> {
        let totals = self.totals();
        update(&self.status, |s| {
            for state in &states {
                if let Some(stage) = s.stages.iter_mut().find(|st| st.name == state.stage) {
                    stage.state_bytes = Some(state.data.len());
                }
            }
        });
        let covered = self.last_chunk.filter(|_| self.acks.is_some());
        if let (Some(acks), Some(seq)) = (&self.acks, covered) {
            self.position.state = acks.persist(seq);
        }
        let cut = Cut {
            position: &self.position,
            finished,
            states,
            watermarks,
            totals,
        };
        self.committer.commit(cut, &mut self.out)?;
        if let (Some(acks), Some(seq)) = (&self.acks, covered) {
            acks.committed(seq);
        }
        Ok(())
    }

    /// Write one chunk's results; the input position moves past the chunk.
    fn write_chunk(&mut self, mut r: WorkResult) -> Result<(), RunError> {
        let states = std::mem::take(&mut r.states);
        let watermarks = std::mem::take(&mut r.watermarks);
        let barrier = r.barrier;
        self.last_chunk = Some(r.seq);
        self.position.next_seq = r.seq + 1;
        if let Some((partition, position)) = r.position.take() {
            self.position.partitions.insert(partition.to_string(), position);
        }
        self.write(r)?;
        if barrier {
            self.checkpoint(false, states, watermarks)?;
        }
        Ok(())
    }

    fn write(&mut self, r: WorkResult) -> Result<(), RunError> {
        self.rows_read += r.rows_in + r.dead.iter().filter(|d| matches!(d, Aside::Raw(_))).count() as u64;
        self.bytes_read += r.span.end_offset - r.span.start_offset;
        let at = |part: usize| WriteAt {
            start: FileStart {
                seq: r.seq,
                part: part as u32,
            },
            ingest_micros: r.ingest_micros,
        };
        for (i, (tap, sink)) in self.out.sinks.iter_mut().enumerate() {
            match tap {
                Tap::Source => {
                    if let Some((data, count)) = &r.raw {
                        sink.write(SinkInput::Records { data, count: *count }, at(0))?;
                    }
                }
                Tap::Main => {
                    for (part, batch) in r.output.iter().enumerate() {
                        if i == 0 {
                            self.rows_written += batch.num_rows() as u64;
                        }
                        sink.write(SinkInput::Rows(batch), at(part))?;
                    }
                }
                Tap::Output { stage, output } => {
                    let mut part = 0;
                    for aside in &r.dead {
                        if let Aside::Tap {
                            stage: s,
                            output: o,
                            rows,
                        } = aside
                            && s == stage
                            && o == output
                        {
                            if i == 0 {
                                self.rows_written += rows.num_rows() as u64;
                            }
                            sink.write(SinkInput::Rows(rows), at(part))?;
                            part += 1;
                        }
                    }
                }
            }
        }
        let start = FileStart { seq: r.seq, part: 0 };
        for item in r.dead {
            match item {
                Aside::Raw(bad) => self.out.dead.bad_record(start, &bad)?,
                Aside::Rows { stage, rows, reason } => {
                    self.out.dead.rows(start, &stage, &r.span, &rows, reason.as_deref())?
                }
                Aside::Tap { .. } => {}
            }
        }
        Ok(())
    }
}

fn write_results(
    plan: &Plan,
    options: &RunOptions,
    mut w: Writer,
    results: Receiver<Msg>,
    permits: Sender<()>,
    started: Instant,
    ended: &AtomicBool,
) -> Result<RunSummary, RunError> {
    let progress = Progress::new(options.progress && std::io::stderr().is_terminal());
    let mut pending: BTreeMap<u64, WorkResult> = BTreeMap::new();
    let mut next = w.position.next_seq;
    let mut finals: Vec<WorkResult> = Vec::new();
    for msg in results.iter() {
        let r = match msg {
            Msg::Done(r) => *r,
            Msg::Failed(e) => return Err(RunError::Worker(e)),
        };
        if r.seq >= u64::MAX - plan.workers as u64 {
            finals.push(r);
            continue;
        }
        pending.insert(r.seq, r);
        while let Some(r) = pending.remove(&next) {
            w.write_chunk(r)?;
            next += 1;
            let _ = permits.send(());
        }
        progress.tick(started, w.rows_read, w.bytes_read, w.rows_written, w.out.dead.count());
    }
    drop(permits);
    if !pending.is_empty() || finals.len() != plan.workers {
        return Err(RunError::Worker(
            "a worker stopped before writing all of its results".into(),
        ));
    }
    // Final results (end-of-input flushes) are written after all input, numbered on from the
    // last chunk; the next run's chunks are numbered after them.
    finals.sort_by_key(|r| r.seq);
    let (mut states, mut watermarks) = (Vec::new(), Vec::new());
    for (i, mut r) in finals.into_iter().enumerate() {
        r.seq = next + i as u64;
        w.position.next_seq = r.seq + 1;
        states.append(&mut r.states);
        watermarks.append(&mut r.watermarks);
        w.write(r)?;
    }
    progress.clear();
    for (_, sink) in &mut w.out.sinks {
        sink.close_all()?;
    }
    w.out.dead.close_all()?;
    let state_bytes = states.iter().map(|s| (s.stage.clone(), s.data.len())).collect();
    w.checkpoint(ended.load(Ordering::SeqCst), states, watermarks)?;
    let (checkpoints, slowest_checkpoint) = (w.committer.taken, w.committer.slowest);
    // Without checkpoints closing published every file; with them the final checkpoint
    // listed the closed files and its commit published them.
    let reports: Vec<SinkReport> = w.out.sinks.iter().map(|(_, s)| s.report()).collect();
    let files = reports.first().map(|r| r.files.clone()).unwrap_or_default();
    let dead_letters = w.out.dead.finish()?;
    Ok(RunSummary {
        rows_read: w.rows_read,
        bytes_read: w.bytes_read,
        rows_written: w.rows_written,
        files,
        sinks: reports,
        dead_letters,
        elapsed: started.elapsed(),
        resumed_from: None,
        checkpoints,
        slowest_checkpoint,
        stopped: false,
        state_bytes,
        restart_with: None,
    })
}

/// A single updating line on stderr, at most once a second.
struct Progress {
    on: bool,
    last: std::cell::Cell<Instant>,
}

impl Progress {
    fn new(on: bool) -> Self {
        Progress {
            on,
            last: std::cell::Cell::new(Instant::now()),
        }
    }

    fn tick(&self, started: Instant, read: u64, bytes: u64, written: u64, dead: u64) {
        if !self.on || self.last.get().elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last.set(Instant::now());
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r{read} rows read ({:.0} rows/s, {:.1} MB/s), {written} written, {dead} dead letters   ",
            read as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    }

    fn clear(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}
