//! The writer: results written in input order into every sink, checkpoints at barriers,
//! acknowledgements after them, and the progress line.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use crossbeam_channel::{Receiver, Sender};

use super::budget;
use super::commit::{Committer, Cut};
use super::lineage::Lineage;
use super::outcome::{RunError, RunOptions, RunSummary};
use super::plan::Plan;
use super::reload::status::{CheckpointFlow, Flow, SharedStatus, SinkFlow, update};
use super::sinks::{Opened, Tap};
use super::worker::{Aside, WorkResult, WorkerError};
use crate::checkpoint::{SourcePosition, StageState, Totals, WatermarkState};
use crate::sink::{FileStart, SinkError, SinkInput, SinkReport, TwoPhase, WriteAt};
use crate::source::Acknowledge;
use crate::telemetry::meters::{DeadReason, RunMeters};

/// What a worker hands the writer.
pub(super) enum Msg {
    Done(Box<WorkResult>),
    Failed(WorkerError),
}

pub(super) struct Writer {
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
    /// `max_dead_letter_ratio`, applied at each checkpoint.
    budget: Option<f64>,
    /// Set when a checkpoint found the budget exceeded: the reader stops, the run ends.
    over_budget: Arc<AtomicBool>,
    /// What `/metrics` shows of the source, dead letters, sinks and checkpoints.
    meters: RunMeters,
    /// What `sluice status` shows of the flow: when it was last published, recent
    /// (time, rows read) samples for the rate, and the last checkpoint.
    shown: (Instant, std::collections::VecDeque<(Instant, u64)>, Flow),
    /// When the last checkpoint was taken (or the run began): a barrier is folded into the
    /// next one only within the checkpoint interval of it (see [`Writer::write_chunk`]).
    checkpointed: Instant,
}

impl Writer {
    /// A writer into `out`, checkpointing through `committer`, continuing from `position`
    /// with the totals of earlier runs.
    pub(super) fn new(
        out: Opened,
        committer: Committer,
        status: SharedStatus,
        acks: Option<Box<dyn Acknowledge>>,
        position: SourcePosition,
        earlier: Totals,
        (budget, over_budget): (Option<f64>, Arc<AtomicBool>),
    ) -> Self {
        let meters = RunMeters::start(committer.pipeline());
        let since_ms = chrono::Utc::now().timestamp_millis();
        let flow = Flow {
            since_ms,
            ..Flow::default()
        };
        Writer {
            out,
            committer,
            status,
            acks,
            last_chunk: None,
            position,
            earlier,
            rows_read: 0,
            bytes_read: 0,
            rows_written: 0,
            budget,
            over_budget,
            meters,
            shown: (Instant::now(), Default::default(), flow),
            checkpointed: Instant::now(),
        }
    }

    /// Publish the flow to `sluice status`: at most five times a second, and at checkpoints,
    /// when the sinks' published files are also counted for `/metrics`.
    fn show_flow(&mut self, checkpoint: bool) {
        let at = Instant::now();
        if !checkpoint && at.duration_since(self.shown.0) < Duration::from_millis(200) {
            return;
        }
        let (last, samples, flow) = &mut self.shown;
        *last = at;
        samples.push_back((at, self.rows_read));
        while samples.len() > 2
            && samples
                .front()
                .is_some_and(|(t, _)| at.duration_since(*t) > Duration::from_secs(10))
        {
            samples.pop_front();
        }
        flow.rows_per_second = match (samples.front(), samples.back()) {
            (Some((t0, r0)), Some((t1, r1))) if t1 > t0 => (r1 - r0) as f64 / t1.duration_since(*t0).as_secs_f64(),
            _ => 0.0,
        };
        flow.rows_read = self.rows_read;
        flow.bytes_read = self.bytes_read;
        flow.sinks = self
            .out
            .sinks
            .iter()
            .map(|(_, s)| {
                let r = s.report();
                SinkFlow {
                    bytes: r.files.iter().map(|f| f.bytes).sum(),
                    files: r.files.len() as u64,
                    rows: r.rows,
                    name: r.name,
                }
            })
            .collect();
        if checkpoint {
            for s in &flow.sinks {
                self.meters.sink_totals(&s.name, s.rows, s.files, s.bytes);
            }
        }
        flow.dead_letters = self.out.dead.by_stage().clone();
        flow.positions = self.position.partitions.clone();
        let flow = flow.clone();
        update(&self.status, |s| s.flow = flow);
    }

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
        for state in &states {
            self.meters.state_bytes(&state.stage, state.data.len());
        }
        update(&self.status, |s| {
            for state in &states {
                if let Some(stage) = s.stages.iter_mut().find(|st| st.name == state.stage) {
                    stage.state_bytes = Some(state.data.len());
                }
            }
        });
        self.checkpointed = Instant::now();
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
        if let Some((took, bytes)) = self.committer.commit(cut, &mut self.out)? {
            self.meters.checkpoint(took.as_secs_f64(), bytes);
            self.shown.2.checkpoint = Some(CheckpointFlow {
                taken: self.committer.taken,
                at_ms: chrono::Utc::now().timestamp_millis(),
                took_ms: took.as_millis() as u64,
                bytes: bytes as u64,
            });
        }
        self.show_flow(true);
        if let (Some(acks), Some(seq)) = (&self.acks, covered) {
            acks.committed(seq);
        }
        // Over budget: the reader stops, and the run ends as a stopped one does (a final
        // checkpoint publishes what it wrote), then fails.
        let counts = budget::Counts {
            read: self.rows_read,
            written: self.rows_written,
            dead: self.out.dead.count(),
        };
        let verdict = budget::judge(self.budget, counts, false);
        if !finished && verdict != budget::Verdict::Fine && !self.over_budget.swap(true, Ordering::SeqCst) {
            tracing::error!(
                "{}; stopping after the records already read.",
                budget::message(&verdict, counts, &self.out.dead.top(3))
            );
        }
        Ok(())
    }

    /// Write one chunk's results; the input position moves past the chunk.
    ///
    /// A barrier is checkpointed unless `fold`: the next chunk is already here and is a
    /// barrier too, so one checkpoint after it covers both (group commit). The later
    /// barrier's stage states and watermarks supersede this one's: a pipeline with state runs
    /// one worker, which snapshots at every barrier in input order. An acknowledging source
    /// (MQTT) marks every chunk a barrier, so a writer that fell behind commits what has
    /// piled up at once instead of paying a checkpoint's syncs per chunk.
    fn write_chunk(&mut self, mut r: WorkResult, fold: bool) -> Result<(), RunError> {
        let states = std::mem::take(&mut r.states);
        let watermarks = std::mem::take(&mut r.watermarks);
        let barrier = r.barrier;
        self.last_chunk = Some(r.seq);
        self.position.next_seq = r.seq + 1;
        self.meters.source_chunks.increment(1);
        if let Some((partition, position)) = r.position.take() {
            self.position.partitions.insert(partition.to_string(), position);
        }
        for partition in r.retired.drain(..) {
            self.position.partitions.remove(&*partition);
        }
        self.write(r)?;
        if barrier && !fold {
            self.checkpoint(false, states, watermarks)?;
        } else {
            self.show_flow(false);
        }
        Ok(())
    }

    fn write(&mut self, r: WorkResult) -> Result<(), RunError> {
        let records = r.rows_in + r.dead.iter().filter(|d| matches!(d, Aside::Raw(_))).count() as u64;
        let bytes = r.span.end_offset - r.span.start_offset;
        self.rows_read += records;
        self.bytes_read += bytes;
        self.meters.source_records.increment(records);
        self.meters.source_bytes.increment(bytes);
        let at = |part: usize| WriteAt {
            start: FileStart {
                seq: r.seq,
                part: part as u32,
            },
            ingest_micros: r.ingest_micros,
        };
        let mut misfits = Vec::new();
        for (i, (tap, sink)) in self.out.sinks.iter_mut().enumerate() {
            match tap {
                Tap::Source => {
                    if let Some((data, count)) = &r.raw {
                        sink.write(SinkInput::Records { data, count: *count }, at(0))?;
                    }
                }
                Tap::Main => {
                    for (part, traced) in r.output.iter().enumerate() {
                        let batch = admit(sink.as_ref(), &traced.batch, &traced.lineage, &mut misfits)?;
                        if i == 0 {
                            self.rows_written += batch.num_rows() as u64;
                        }
                        sink.write(SinkInput::Rows(&batch), at(part))?;
                    }
                }
                Tap::Output { stage, output } => {
                    let mut part = 0;
                    for aside in &r.dead {
                        if let Aside::Tap {
                            stage: s,
                            output: o,
                            rows,
                            lineage,
                        } = aside
                            && s == stage
                            && o == output
                        {
                            let rows = admit(sink.as_ref(), rows, lineage, &mut misfits)?;
                            if i == 0 {
                                self.rows_written += rows.num_rows() as u64;
                            }
                            sink.write(SinkInput::Rows(&rows), at(part))?;
                            part += 1;
                        }
                    }
                }
            }
        }
        let start = FileStart { seq: r.seq, part: 0 };
        for (sink, rows, lineage) in misfits {
            let stage = format!("sink {sink}");
            self.meters
                .dead_letters(&stage, DeadReason::SinkMisfit, rows.num_rows() as u64);
            let origins = lineage.origins(&r.records);
            self.out.dead.rows(start, &stage, &r.span, &origins, &rows, None)?;
        }
        for item in r.dead {
            match item {
                Aside::Raw(bad) => {
                    self.meters.dead_letters("decode", DeadReason::Decode, 1);
                    self.out.dead.bad_record(start, &bad)?
                }
                Aside::Rows {
                    stage,
                    rows,
                    reason,
                    lineage,
                } => {
                    let why = if reason.is_some() {
                        DeadReason::TransformError
                    } else {
                        DeadReason::Rejected
                    };
                    self.meters.dead_letters(&stage, why, rows.num_rows() as u64);
                    let origins = lineage.origins(&r.records);
                    self.out
                        .dead
                        .rows(start, &stage, &r.span, &origins, &rows, reason.as_deref())?
                }
                Aside::Tap { .. } => {}
            }
        }
        Ok(())
    }
}

/// The rows of `batch` that `sink` can write; the others go to `misfits` as
/// (sink name, rows with a reason column last, their lineage), as a stage's rejected rows do.
fn admit<'b>(
    sink: &dyn crate::sink::Sink,
    batch: &'b RecordBatch,
    lineage: &Lineage,
    misfits: &mut Vec<(String, RecordBatch, Lineage)>,
) -> Result<std::borrow::Cow<'b, RecordBatch>, SinkError> {
    let found = sink.misfits(batch)?;
    if found.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(batch));
    }
    let mut keep = vec![true; batch.num_rows()];
    for (row, _) in &found {
        keep[*row as usize] = false;
    }
    let kept = filter_record_batch(batch, &BooleanArray::from(keep))?;
    let rows = UInt32Array::from_iter_values(found.iter().map(|(r, _)| *r));
    let mut rejected = take_record_batch(batch, &rows)?;
    let reasons: ArrayRef = Arc::new(StringArray::from_iter_values(found.iter().map(|(_, why)| why.as_str())));
    let mut fields: Vec<_> = rejected.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("reason", DataType::Utf8, false)));
    let mut columns = rejected.columns().to_vec();
    columns.push(reasons);
    rejected = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    misfits.push((sink.name().to_owned(), rejected, lineage.through(Some(&rows))));
    Ok(std::borrow::Cow::Owned(kept))
}

pub(super) fn write_results(
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
    while let Ok(first) = results.recv() {
        // Everything that has arrived, so that a barrier can see whether the next one is here.
        for msg in std::iter::once(first).chain(results.try_iter()) {
            let r = match msg {
                Msg::Done(r) => *r,
                Msg::Failed(e) => return Err(RunError::Worker(e)),
            };
            if r.seq >= u64::MAX - plan.workers as u64 {
                finals.push(r);
            } else {
                pending.insert(r.seq, r);
            }
        }
        while let Some(r) = pending.remove(&next) {
            let fold = r.barrier
                && pending.get(&(next + 1)).is_some_and(|n| n.barrier)
                && w.checkpointed.elapsed() < plan.checkpoint.interval;
            w.write_chunk(r, fold)?;
            next += 1;
            let _ = permits.send(());
        }
        progress.tick(started, w.rows_read, w.bytes_read, w.rows_written, w.out.dead.count());
    }
    drop(permits);
    if !pending.is_empty() || finals.len() != plan.workers {
        return Err(RunError::Thread(
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
        over_budget: false,
        lag: Default::default(),
        state_bytes,
        restart_with: None,
        restarting: false,
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
