//! The reload watcher: notices changes of the pipeline file and of the component files it
//! references (through `notify`, debounced, or on SIGHUP), checks the new version as a
//! whole, publishes it, and follows what the workers report.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use notify::{RecursiveMode, Watcher};

use super::status::{ReloadStatus, SharedStatus, update};
use super::{Generations, SwapReport, diff};
use crate::checkpoint::protocol::ReloadChanges;
use crate::config::{self, LoadedConfig, PluginRef};
use crate::engine::Engine;
use crate::pipeline::Plan;
use crate::telemetry::meters;

/// How a run reloads.
#[derive(Clone)]
pub struct ReloadSettings {
    /// The pipeline file.
    pub path: PathBuf,
    /// Compiles new components (shares the run's compiled-component cache).
    pub engine: Arc<Engine>,
    /// Quiet time after the last change before the new version is read.
    pub debounce: Duration,
    /// Set by SIGHUP: reload now.
    pub hangup: Arc<AtomicBool>,
    /// Where each stage's component came from at the start (see [`component_sources`]).
    pub components: Vec<(String, Option<PathBuf>)>,
    /// Set when a change needs a stop at a checkpoint and a new start.
    pub restart: Restart,
    /// When the files of the running version were read: a file changed since (before the
    /// watcher was up to see it) is reloaded as soon as it is.
    pub read_at: std::time::SystemTime,
}

/// A request to stop at a checkpoint and start again with another plan.
#[derive(Debug, Clone, Default)]
pub struct Restart {
    /// Set once the new plan is ready: the run stops as on SIGTERM.
    pub requested: Arc<AtomicBool>,
    /// The plan to start again with, and its components' sources.
    pub plan: Arc<std::sync::Mutex<Option<NextPlan>>>,
}

/// The plan a restart starts with, where its components come from, and the stateful
/// stages it adds or removes.
pub type NextPlan = (Box<Plan>, Vec<(String, Option<PathBuf>)>, ReloadChanges);

impl std::fmt::Debug for ReloadSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadSettings")
            .field("path", &self.path)
            .field("debounce", &self.debounce)
            .finish_non_exhaustive()
    }
}

/// Where each stage's component comes from, for the status and the watch list.
pub fn component_sources(loaded: &LoadedConfig) -> Vec<(String, Option<PathBuf>)> {
    loaded
        .config
        .transforms
        .iter()
        .map(|t| match &t.plugin.value {
            PluginRef::Stock(name) => (format!("stock:{name}"), None),
            PluginRef::File(path) => (path.display().to_string(), Some(absolute(path))),
        })
        .collect()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// How far behind the clock a file's modification time may be (the kernel's coarse clock is
/// a tick behind at most: 10 ms at 100 Hz, the slowest tick Linux has).
const MTIME_SLACK: Duration = Duration::from_millis(20);

/// A reload in flight: published, waiting for the workers.
struct Pending {
    generation: u64,
    previous: Arc<Plan>,
    components: Vec<String>,
    noticed: Instant,
    noticed_ms: i64,
}

/// The watcher thread's state.
pub struct Reloader {
    settings: ReloadSettings,
    generations: Arc<Generations>,
    reports: Receiver<SwapReport>,
    status: SharedStatus,
    watched: BTreeSet<PathBuf>,
    pending: Option<Pending>,
}

impl Reloader {
    /// A watcher for a run that started with `components` (from [`component_sources`]).
    pub fn new(
        settings: ReloadSettings,
        generations: Arc<Generations>,
        reports: Receiver<SwapReport>,
        status: SharedStatus,
        components: &[(String, Option<PathBuf>)],
    ) -> Self {
        let mut watched: BTreeSet<PathBuf> = components.iter().filter_map(|(_, p)| p.clone()).collect();
        watched.insert(absolute(&settings.path));
        Reloader {
            settings,
            generations,
            reports,
            status,
            watched,
            pending: None,
        }
    }

    /// Watch until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = match notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, "Cannot watch the pipeline's files; reload with SIGHUP instead.");
                None
            }
        };
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        // First, last, first as unix ms, and whether only the start-up check asked for it.
        let mut changed: Option<(Instant, Instant, i64, bool)> = None;
        let mut first_watch = true;
        while !stop.load(Ordering::SeqCst) {
            if let Some(w) = watcher.as_mut() {
                for dir in self.watched.iter().filter_map(|p| p.parent()) {
                    if dirs.insert(dir.to_owned())
                        && let Err(e) = w.watch(dir, RecursiveMode::NonRecursive)
                    {
                        tracing::warn!(dir = %dir.display(), error = %e, "Cannot watch a folder for reloads.");
                    }
                }
            }
            if std::mem::take(&mut first_watch) && self.changed_before_watching() {
                tracing::info!("A watched file changed while the run was starting; reloading it.");
                let now = Instant::now();
                changed = Some((now, now, chrono::Utc::now().timestamp_millis(), true));
            }
            self.follow_reports();
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(Ok(event)) if event.paths.iter().any(|p| self.watched.contains(p)) && !event.kind.is_access() => {
                    let now = Instant::now();
                    let ms = chrono::Utc::now().timestamp_millis();
                    changed = Some(changed.map_or((now, now, ms, false), |(first, _, m, _)| (first, now, m, false)));
                }
                _ => {}
            }
            if self.settings.hangup.swap(false, Ordering::SeqCst) {
                let now = Instant::now();
                let (first, _, ms, _) = changed.unwrap_or((now, now, chrono::Utc::now().timestamp_millis(), false));
                changed = Some((first, now - self.settings.debounce, ms, false));
            }
            if let Some((first, last, ms, spare)) = changed
                && last.elapsed() >= self.settings.debounce
            {
                changed = None;
                self.attempt(first, ms, spare);
            }
        }
    }

    /// Whether a watched file was modified after the running version was read, before the
    /// watcher could see it. A time up to [`MTIME_SLACK`] before the read counts too: file
    /// times come from the kernel's coarse clock, which lags the one `read_at` was taken from
    /// by up to a tick, so an edit made just after the read can carry an earlier time. A spare
    /// reload finds nothing changed.
    fn changed_before_watching(&self) -> bool {
        let since = self.settings.read_at - MTIME_SLACK;
        self.watched.iter().any(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since)
        })
    }

    fn refuse(&self, reason: String, noticed_ms: i64) {
        tracing::error!(reason = %reason, "Reload refused; the running version goes on.");
        let pipeline = self.generations.latest().name.clone();
        let mut previous = None;
        let detail = reason.clone();
        update(&self.status, |s| {
            previous = s
                .last_reload
                .as_ref()
                .filter(|r| r.outcome == "refused")
                .map(|r| r.detail.clone());
            s.reloads_refused += 1;
            s.last_reload = Some(ReloadStatus {
                outcome: "refused".into(),
                detail,
                generation: None,
                changed_at_ms: noticed_ms,
                took_ms: None,
            });
        });
        meters::reload_refused(&pipeline, &reason, previous.as_deref());
    }

    /// Check the new version as a whole and publish it.
    /// Read the pipeline again and apply what changed. A `spare` attempt (the start-up check
    /// of [`Self::changed_before_watching`], no event or signal since) that finds nothing
    /// changed leaves the status alone: it is not a reload anyone made, and the last one
    /// (kept across a restart that applied it) stays the one `sluice status` shows.
    fn attempt(&mut self, noticed: Instant, noticed_ms: i64, spare: bool) {
        if self.pending.is_some() {
            // One at a time: the next change is read once the workers took this one.
            self.follow_reports();
            if self.pending.is_some() {
                self.settings.hangup.store(true, Ordering::SeqCst);
                return;
            }
        }
        let current = self.generations.latest();
        let loaded = match config::load(&self.settings.path) {
            Ok(l) => l,
            Err(e) => return self.refuse(format!("{e:#}"), noticed_ms),
        };
        let components = component_sources(&loaded);
        for (_, path) in &components {
            if let Some(p) = path {
                self.watched.insert(p.clone());
            }
        }
        let plan = match Plan::build(&loaded, &self.settings.engine) {
            Ok(p) => p,
            Err(e) => return self.refuse(format!("{e:#}"), noticed_ms),
        };
        let changed = match diff(&current, &plan) {
            Ok(c) => c,
            Err(reason) => return self.restart(plan, components, reason, noticed_ms),
        };
        if changed.is_empty() && spare {
            tracing::debug!("The start-up check found nothing changed.");
            return;
        }
        if changed.is_empty() {
            tracing::info!("Reload: nothing changed.");
            update(&self.status, |s| {
                s.last_reload = Some(ReloadStatus {
                    outcome: "unchanged".into(),
                    detail: String::new(),
                    generation: None,
                    changed_at_ms: noticed_ms,
                    took_ms: None,
                });
            });
            return;
        }
        // Instantiate and open every changed stage once, off the data path: a component that
        // traps there is refused before any worker sees it.
        for name in &changed {
            let Some(stage) = plan.stages.iter().find(|s| &s.name == name) else {
                continue;
            };
            let check = stage
                .component
                .instantiate(&format!("{}/{} (reload check)", plan.name, stage.name), &stage.limits)
                .map_err(|e| e.to_string())
                .and_then(
                    |mut i| match i.open(&stage.config_json, &stage.input, &stage.description) {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(format!("refused its config: {}", e.message)),
                        Err(e) => Err(e.to_string()),
                    },
                );
            if let Err(e) = check {
                return self.refuse(
                    format!("transform `{name}` of the new version failed to start: {e}"),
                    noticed_ms,
                );
            }
        }
        let components: Vec<String> = components.into_iter().map(|(c, _)| c).collect();
        let generation = self.generations.publish(Arc::new(plan));
        tracing::info!(generation, changed = ?changed, "Reload checked; swapping at the next chunk.");
        update(&self.status, |s| {
            s.last_reload = Some(ReloadStatus {
                outcome: "pending".into(),
                detail: format!("changed: {}", changed.join(", ")),
                generation: Some(generation),
                changed_at_ms: noticed_ms,
                took_ms: None,
            });
        });
        self.pending = Some(Pending {
            generation,
            previous: current,
            components,
            noticed,
            noticed_ms,
        });
    }

    /// A change outside the transforms: applied by stopping at a checkpoint and starting
    /// again from it with the new plan, when the input can be resumed.
    fn restart(&mut self, plan: Plan, components: Vec<(String, Option<PathBuf>)>, reason: String, noticed_ms: i64) {
        let current = self.generations.latest();
        let resumable = current.checkpoint.enabled && current.source.resumable();
        if !resumable {
            return self.refuse(
                format!(
                    "{reason}, and this run has no checkpoint to restart from (stdin input or checkpoints disabled): stop sluice and start it again to apply it"
                ),
                noticed_ms,
            );
        }
        let changes = match reload_changes(&current, &plan) {
            Ok(changes) => changes,
            Err(why) => return self.refuse(why, noticed_ms),
        };
        tracing::info!(change = %reason, "Reload applied by a restart: stopping at a checkpoint, then starting again from it with the new version.");
        meters::reload_applied(&current.name);
        update(&self.status, |s| {
            s.reloads_applied += 1;
            s.last_reload = Some(ReloadStatus {
                outcome: "restarting".into(),
                detail: reason,
                generation: None,
                changed_at_ms: noticed_ms,
                took_ms: None,
            });
        });
        *self
            .settings
            .restart
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Box::new(plan), components, changes));
        self.settings.restart.requested.store(true, Ordering::SeqCst);
    }

    /// Take in what the workers did with the pending generation.
    fn follow_reports(&mut self) {
        while let Ok(report) = self.reports.try_recv() {
            let Some(p) = self.pending.as_ref().filter(|p| p.generation == report.generation) else {
                continue;
            };
            let took = p.noticed.elapsed().as_millis() as u64;
            match report.outcome {
                Ok(changed) => {
                    tracing::info!(
                        generation = p.generation,
                        first_chunk = report.first_chunk,
                        changed = ?changed,
                        took_ms = took,
                        swap_us = report.swap_micros,
                        "Reload applied."
                    );
                    let plan = self.generations.plan(p.generation);
                    meters::reload_applied(&plan.name);
                    for stage in &p.previous.stages {
                        meters::component_retired(&plan.name, &stage.name, stage.component.digest());
                    }
                    for stage in &plan.stages {
                        meters::component(&plan.name, &stage.name, stage.component.digest());
                    }
                    let (generation, components, ms) = (p.generation, p.components.clone(), p.noticed_ms);
                    update(&self.status, |s| {
                        s.set_plan(&plan, generation, &components);
                        s.reloads_applied += 1;
                        s.last_reload = Some(ReloadStatus {
                            outcome: "applied".into(),
                            detail: format!("changed: {}; first chunk {}", changed.join(", "), report.first_chunk),
                            generation: Some(generation),
                            changed_at_ms: ms,
                            took_ms: Some(took),
                        });
                    });
                }
                Err(reason) => {
                    // Back to the previous plan for every worker (one may have swapped).
                    self.generations.publish(p.previous.clone());
                    let ms = p.noticed_ms;
                    self.refuse(reason, ms);
                }
            }
            self.pending = None;
        }
    }
}

/// The stateful stages `new` adds to and removes from `old`, and the sinks it removes.
/// Stateful stages added and removed at once may be a rename, which would silently lose the
/// renamed stage's state: refused.
fn reload_changes(old: &Plan, new: &Plan) -> Result<ReloadChanges, String> {
    let stateful = |p: &Plan| -> Vec<String> {
        p.stages
            .iter()
            .filter(|s| s.stateful())
            .map(|s| s.name.clone())
            .collect()
    };
    let (before, after) = (stateful(old), stateful(new));
    let changes = ReloadChanges {
        added: after.iter().filter(|s| !before.contains(s)).cloned().collect(),
        removed: before.iter().filter(|s| !after.contains(s)).cloned().collect(),
        removed_sinks: old
            .sinks
            .iter()
            .filter(|s| !new.sinks.iter().any(|n| n.name == s.name))
            .map(|s| s.name.clone())
            .collect(),
    };
    if !changes.added.is_empty() && !changes.removed.is_empty() {
        return Err(format!(
            "stateful transform(s) {} removed and {} added in one change: if that is a rename, the state would be lost. Keep the name, or remove the old transform and add the new one in two separate changes",
            changes
                .removed
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", "),
            changes
                .added
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(changes)
}
