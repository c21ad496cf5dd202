//! The running pipeline: a reader thread cuts the input into numbered chunks, worker threads
//! decode and transform them in parallel (a single worker, as a stateful chain has, gets its
//! chunks decoded ahead of it on threads of their own, in input order, and taken through
//! the stateless stages before the stateful one there: see `head.rs`), and the calling
//! thread writes results in input order (so output names and contents do not depend on
//! thread timing). This file starts the threads; `writer.rs` writes, `worker.rs` transforms,
//! `outcome.rs` holds the types.
//!
//! Back-pressure: at most `2 × (workers + decoding threads) + 2` chunks are in flight (read
//! but not yet written) at any time, held by a permit the writer returns; memory is bounded
//! whatever the input.
//!
//! Checkpoints: the reader marks a chunk as a barrier every interval; once the writer has
//! written that chunk's output it takes a checkpoint (see `checkpoint`). A run resumes from
//! the latest checkpoint. A stop request (SIGTERM/SIGINT) ends reading at a chunk boundary;
//! what is in flight is written, stateful stages keep (not flush) what they hold, and a
//! final checkpoint records it all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

use super::budget;
use super::commit::Committer;
use super::head::Head;
use super::ordered;
use super::outcome::{RunError, RunOptions, RunSummary};
use super::plan::Plan;
use super::reload::status::{Server, SharedStatus, socket_path, update};
use super::reload::watch::Reloader;
use super::reload::{Generations, SwapReport};
use super::resume::{Start, prepare};
use super::sinks;
use super::worker::{Decoding, Partial, Worker, WorkerError};
use super::writer::{Msg, Writer, write_results};
use crate::checkpoint::protocol::BarrierClock;
use crate::checkpoint::store;
use crate::checkpoint::{StageState, WatermarkState};
use crate::record::{Chunk, SourceSpan};
use crate::source::{Source, SourceError};
use crate::telemetry::meters;

/// Run a plan to the end of its input (or until asked to stop), resuming from its checkpoint.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let checkpointing = plan.checkpoint.enabled && plan.source.resumable();
    let lane = plan.lane.as_ref().map(|l| l.name.as_str());
    let opened = sinks::open(&plan.sinks, &plan.dead_letter, &plan.checkpoint, !checkpointing, lane)?;
    let start = prepare(plan, options.from_scratch, &opened.targets(), &options.reload_changes)?;
    let resumed_from = start.resumed.as_ref().map(|(epoch, _)| *epoch);
    let stop = options.stop.clone().unwrap_or_default();
    // A reload that needs a restart stops this run like a signal, but only this one.
    let restart = options.reload.as_ref().map(|r| r.restart.clone()).unwrap_or_default();
    let over_budget = Arc::new(AtomicBool::new(false));
    let stop_reading = {
        let (stop, requested, over) = (stop.clone(), restart.requested.clone(), over_budget.clone());
        move || stop.load(Ordering::SeqCst) || requested.load(Ordering::SeqCst) || over.load(Ordering::SeqCst)
    };
    let mut source = plan.source.open(&stop)?;
    source.resume(&start.position)?;
    let acks = source.acknowledger();
    let generations = Generations::new(Arc::new(plan.clone()));
    let status: SharedStatus = options.status.clone().unwrap_or_default();
    // A leased shard's run is one of many: the worker serves `sluice status` for all of them.
    let _status_server = plan.lane.is_none().then(|| serve_status(plan, options, &status));
    let (report_tx, report_rx) = unbounded::<SwapReport>();
    let reloading = Arc::new(AtomicBool::new(false));
    let reloader = start_reloader(options, &generations, report_rx, &status, &reloading)?;
    let in_flight = 2 * (plan.workers + decoding_threads(plan)) + 2;
    let (permit_tx, permit_rx) = bounded::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = permit_tx.send(());
    }
    let (chunk_tx, chunk_rx) = bounded(in_flight);
    let (result_tx, result_rx) = unbounded::<Msg>();
    let ended = Arc::new(AtomicBool::new(false));
    let reading = Reading {
        source,
        interval: plan.checkpoint.interval,
        checkpointing,
        // A source that acknowledges what is committed checkpoints after every chunk: its
        // chunks are cut by size, latency or the broker's in-flight window.
        every_chunk: acks.is_some(),
        generations: generations.clone(),
        ended: ended.clone(),
        status: status.clone(),
        pipeline: plan.name.clone(),
    };
    let reader = spawn_reader(reading, permit_rx, chunk_tx, stop_reading.clone())?;
    let handles = spawn_workers(plan, &start, &chunk_rx, &result_tx, (&generations, &report_tx), &ended)?;
    drop((chunk_rx, result_tx, report_tx));
    let committer = Committer::new(plan, start.store, start.epoch);
    let writer = Writer::new(
        opened,
        committer,
        status.clone(),
        acks,
        start.position,
        start.totals,
        (plan.max_dead_letter_ratio, over_budget.clone()),
    );
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
        .map_err(|_| RunError::Thread("the reader thread panicked".into()))?;
    let mut summary = outcome?;
    let source = read?;
    summary.lag = source.lag();
    // Dropped only now, after the final checkpoint: its PUBACKs leave before the DISCONNECT.
    drop(source);
    summary.elapsed = started.elapsed();
    summary.resumed_from = resumed_from;
    summary.stopped = stop_reading() && !ended.load(Ordering::SeqCst);
    let tripped = over_budget.load(Ordering::SeqCst);
    summary.over_budget = tripped;
    if !summary.stopped || tripped {
        let counts = budget::Counts {
            read: summary.rows_read,
            written: summary.sinks.iter().map(|s| s.rows).sum(),
            dead: summary.dead_letters.count,
        };
        let verdict = match budget::judge(plan.max_dead_letter_ratio, counts, true) {
            budget::Verdict::Fine if tripped => budget::Verdict::OverBudget {
                ratio: counts.dead as f64 / counts.read.max(1) as f64,
                limit: plan.max_dead_letter_ratio.unwrap_or(1.0),
            },
            v => v,
        };
        if verdict != budget::Verdict::Fine {
            return Err(RunError::DeadLetters {
                message: budget::message(&verdict, counts, &summary.dead_letters.top),
                summary: Some(Box::new(summary)),
            });
        }
    }
    if summary.stopped && !stop.load(Ordering::SeqCst) {
        summary.restart_with = restart
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
    Ok(summary)
}

/// Serve `sluice status` for this run (a warning, not a failure, when it cannot).
fn serve_status(plan: &Plan, options: &RunOptions, status: &SharedStatus) -> Option<Server> {
    let components: Vec<String> = options
        .reload
        .as_ref()
        .map(|r| r.components.iter().map(|(c, _)| c.clone()).collect())
        .unwrap_or_else(|| options.components.clone());
    update(status, |s| {
        s.set_plan(plan, 0, &components);
        // This run is the restart a reload asked for: that reload is now applied.
        if let Some(r) = s.last_reload.as_mut().filter(|r| r.outcome == "restarting") {
            r.outcome = "applied".into();
            r.detail = format!("{}; restarted from the checkpoint", r.detail);
        }
    });
    for stage in &plan.stages {
        meters::component(&plan.name, &stage.name, stage.component.digest());
    }
    let socket = socket_path(&plan.name, &store::open(&plan.checkpoint).location());
    Server::start(socket, status.clone())
        .inspect_err(|e| tracing::warn!(error = %e, "`sluice status` is not served for this run."))
        .ok()
}

/// The reload controller's thread, when the run watches its files.
fn start_reloader(
    options: &RunOptions,
    generations: &Arc<Generations>,
    reports: Receiver<SwapReport>,
    status: &SharedStatus,
    done: &Arc<AtomicBool>,
) -> Result<Option<JoinHandle<()>>, RunError> {
    let Some(settings) = &options.reload else {
        return Ok(None);
    };
    let reloader = Reloader::new(
        settings.clone(),
        generations.clone(),
        reports,
        status.clone(),
        &settings.components,
    );
    let done = done.clone();
    std::thread::Builder::new()
        .name("sluice-reload".into())
        .spawn(move || reloader.run(&done))
        .map(Some)
        .map_err(|e| RunError::Thread(format!("cannot start the reload thread: {e}")))
}

/// What the reader thread ends with: the source (kept open until the final checkpoint's
/// acknowledgements are sent), or why reading failed.
type Read = Result<Box<dyn Source>, SourceError>;

/// What the reader thread needs.
struct Reading {
    source: Box<dyn Source>,
    interval: std::time::Duration,
    checkpointing: bool,
    every_chunk: bool,
    generations: Arc<Generations>,
    ended: Arc<AtomicBool>,
    status: SharedStatus,
    pipeline: String,
}

/// The reader: a chunk per permit, barriers on the clock, until the input ends or a stop.
fn spawn_reader(
    mut r: Reading,
    permits: Receiver<()>,
    chunks: Sender<Chunk>,
    stop_reading: impl Fn() -> bool + Send + 'static,
) -> Result<JoinHandle<Read>, RunError> {
    std::thread::Builder::new()
        .name("sluice-read".into())
        .spawn(move || {
            let mut clock = BarrierClock::new(r.interval, Instant::now());
            while !stop_reading() && permits.recv().is_ok() && !stop_reading() {
                let Some(mut chunk) = r.source.next_chunk()? else {
                    r.ended.store(r.source.bounded(), Ordering::SeqCst);
                    break;
                };
                chunk.barrier = r.checkpointing && (r.every_chunk || clock.due(Instant::now()));
                chunk.generation = r.generations.current();
                if let Some(bytes) = r.source.backlog() {
                    meters::source_backlog(&r.pipeline, bytes);
                }
                if let Some(messages) = r.source.in_flight() {
                    meters::source_in_flight(&r.pipeline, messages);
                }
                let lag = r.source.lag();
                if !lag.is_empty() {
                    for (partition, millis) in &lag {
                        meters::source_lag(&r.pipeline, partition, *millis);
                    }
                    update(&r.status, |s| s.lag = lag);
                }
                if chunks.send(chunk).is_err() {
                    break;
                }
            }
            Ok(r.source)
        })
        .map_err(|e| RunError::Thread(format!("cannot start the reader thread: {e}")))
}

/// The workers, each with its own instances of the chain, started from the checkpoint.
fn spawn_workers(
    plan: &Plan,
    start: &Start,
    chunks: &Receiver<Chunk>,
    results: &Sender<Msg>,
    (generations, reports): (&Arc<Generations>, &Sender<SwapReport>),
    ended: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>, RunError> {
    let mut handles = Vec::new();
    // A single chain (a stateful stage needs its input in order) gets its chunks decoded
    // ahead of it, on threads of their own, and handed on in input order; those threads
    // run the stateless stages before the stateful one too.
    let mut decoded = (plan.workers == 1)
        .then(|| spawn_decoding(plan, generations, chunks, decoding_threads(plan), &mut handles))
        .transpose()?;
    for id in 0..plan.workers {
        let plan = plan.clone();
        let input: Box<dyn Iterator<Item = Prepared> + Send> = match decoded.take() {
            Some(decoded) => Box::new(decoded.results()),
            None => Box::new(chunks.clone().into_iter().map(|chunk| (chunk, None))),
        };
        let tx = results.clone();
        let (states, watermarks) = (start.states.clone(), start.watermarks.clone());
        let ended = ended.clone();
        let reload = (generations.clone(), reports.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("sluice-work-{id}"))
            .spawn(move || work(&plan, id, (&states, &watermarks), input, tx, &ended, &reload));
        handles.push(spawned.map_err(|e| RunError::Thread(format!("cannot start a worker thread: {e}")))?);
    }
    Ok(handles)
}

/// A chunk for a worker, and its rows when they were decoded (and taken through the chain's
/// head) ahead of the worker.
type Prepared = (Chunk, Option<Result<Partial, WorkerError>>);

/// How many threads decode ahead of a single chain: one per core (at least one), as
/// decoding is most of a chain's work when its stages are cheap.
fn decoding_threads(plan: &Plan) -> usize {
    if plan.workers != 1 {
        return 0;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// Start `threads` threads that decode `chunks` for a single chain and take them through
/// its head (`head.rs`), in input order.
fn spawn_decoding(
    plan: &Plan,
    generations: &Arc<Generations>,
    chunks: &Receiver<Chunk>,
    threads: usize,
    handles: &mut Vec<JoinHandle<()>>,
) -> Result<ordered::Ordered<Prepared>, RunError> {
    let ids = std::sync::atomic::AtomicUsize::new(1);
    let (decoded, spawned) = ordered::spawn("sluice-decode", chunks, threads, || {
        let decoding = Decoding::new(plan);
        let mut head = Head::new(generations.clone(), ids.fetch_add(1, Ordering::Relaxed));
        move |mut chunk: Chunk| {
            let partial = decoding.decode(&chunk).and_then(|decoded| {
                let mut partial = Partial::of(&mut chunk, decoded);
                head.run(&chunk, &mut partial)?;
                Ok(partial)
            });
            (chunk, Some(partial))
        }
    })
    .map_err(|e| RunError::Thread(format!("cannot start a decoding thread: {e}")))?;
    handles.extend(spawned);
    Ok(decoded)
}

fn work(
    plan: &Plan,
    id: usize,
    (states, watermarks): (&[Option<StageState>], &[WatermarkState]),
    chunks: Box<dyn Iterator<Item = Prepared> + Send>,
    results: Sender<Msg>,
    ended: &AtomicBool,
    (generations, reports): &(Arc<Generations>, Sender<SwapReport>),
) {
    let fail = |e: WorkerError| {
        let _ = results.send(Msg::Failed(e));
    };
    let mut worker = match Worker::new(plan, id, states, watermarks) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut last: Option<(SourceSpan, i64)> = None;
    // The generation of the chunks seen last, and the one the worker's stages are of (the
    // same unless a swap failed).
    let (mut generation, mut applied) = (0, 0);
    for (chunk, decoded) in chunks {
        last = Some((chunk.span.clone(), chunk.ingest_micros));
        if chunk.generation != generation {
            generation = chunk.generation;
            let swap_started = Instant::now();
            let outcome = worker.swap(&generations.plan(generation), id);
            if outcome.is_ok() {
                applied = generation;
            }
            let _ = reports.send(SwapReport {
                generation,
                first_chunk: chunk.seq,
                swap_micros: swap_started.elapsed().as_micros() as u64,
                outcome,
            });
        }
        let processed = match decoded {
            Some(partial) => partial.and_then(|p| worker.complete_ahead(chunk, p, applied)),
            None => worker.process(chunk),
        };
        match processed {
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
    // A leased shard read to its end is not the end of the input: its keys go on in its
    // children, which start from the state its stages hold now (unflushed, open windows
    // included; see `leased::inherit`).
    let flush = ended.load(Ordering::SeqCst) && plan.lane.is_none();
    match worker.finish(u64::MAX - plan.workers as u64 + id as u64, span, ingest, flush) {
        Ok(r) => {
            let _ = results.send(Msg::Done(Box::new(r)));
        }
        Err(e) => fail(e),
    }
}
