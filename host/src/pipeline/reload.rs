//! Hot reload: a changed pipeline file or component is checked as a whole and swapped in at
//! a chunk boundary, with each changed stateful transform's state handed to its new version.
//!
//! The protocol:
//! 1. The watcher (`reload::watch`) notices a change of the pipeline file or of a component
//!    it references (debounced), or SIGHUP.
//! 2. The file is parsed and planned exactly as `sluice validate` does (every `describe`,
//!    every component compiled; a pinned `sha256` must match), then [`diff`]ed against the
//!    running plan. Only transforms can change in place: a change anywhere else, or to the
//!    set of stateful transforms or the output schema, is refused with the reason.
//! 3. Each changed stage is instantiated and opened once, off the data path.
//! 4. The plan is published as a new [`Generations`] entry. The reader tags every chunk with
//!    the generation current when it was read; a worker meeting a newer generation swaps
//!    before that chunk: unchanged stages keep their instances, changed ones are started,
//!    and a changed stateful stage gets the old instance's snapshot (`restore`). If any
//!    restore is refused (and the stage does not say `state = "discard"`), the worker keeps
//!    the old stages, the reload is refused, and the previous plan is published again.
//!
//! Anything refused leaves the running plan untouched; the reason goes to the log (ERROR),
//! to the counters and to `sluice status`.

pub mod restarts;
pub mod status;
pub mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::plan::Plan;

/// Every plan a run has used, by generation (0 is the one it started with).
#[derive(Debug)]
pub struct Generations {
    plans: RwLock<Vec<Arc<Plan>>>,
    current: AtomicU64,
}

impl Generations {
    /// A run starting with `plan`.
    pub fn new(plan: Arc<Plan>) -> Arc<Self> {
        Arc::new(Generations {
            plans: RwLock::new(vec![plan]),
            current: AtomicU64::new(0),
        })
    }

    /// The generation new chunks are read under.
    pub fn current(&self) -> u64 {
        self.current.load(Ordering::SeqCst)
    }

    /// The plan of generation `g`.
    pub fn plan(&self, g: u64) -> Arc<Plan> {
        let plans = self.plans.read().unwrap_or_else(PoisonError::into_inner);
        plans[(g as usize).min(plans.len() - 1)].clone()
    }

    /// The plan new chunks are read under.
    pub fn latest(&self) -> Arc<Plan> {
        self.plan(self.current())
    }

    /// Make `plan` the one new chunks are read under; returns its generation.
    pub fn publish(&self, plan: Arc<Plan>) -> u64 {
        let mut plans = self.plans.write().unwrap_or_else(PoisonError::into_inner);
        plans.push(plan);
        let g = plans.len() as u64 - 1;
        self.current.store(g, Ordering::SeqCst);
        g
    }
}

/// What a worker did on meeting a new generation.
#[derive(Debug, Clone)]
pub struct SwapReport {
    /// The generation.
    pub generation: u64,
    /// The first chunk processed under it.
    pub first_chunk: u64,
    /// How long the worker spent swapping (the pause in the data path).
    pub swap_micros: u64,
    /// The stages that changed, or why the worker kept the old ones.
    pub outcome: Result<Vec<String>, String>,
}

/// The stages of `new` that differ from `old`, or why `new` cannot replace `old` while
/// running. An empty list means nothing to do.
pub fn diff(old: &Plan, new: &Plan) -> Result<Vec<String>, String> {
    let mut fixed = Vec::new();
    if old.name != new.name {
        fixed.push("[pipeline] name");
    }
    if !old.source.same_as(new.source.as_ref()) || old.source_id != new.source_id || old.batch_rows != new.batch_rows {
        fixed.push("[source]");
    }
    if old.input_schema != new.input_schema {
        fixed.push("[source.schema]");
    }
    if old.sinks != new.sinks {
        fixed.push("[sink] (or the schema of the rows that reach it)");
    }
    if old.dead_letter != new.dead_letter {
        fixed.push("[dead_letter]");
    }
    if old.checkpoint != new.checkpoint {
        fixed.push("[checkpoint]");
    }
    if old.workers != new.workers {
        fixed.push("[pipeline] workers (or whether a transform is stateful)");
    }
    let stateful = |p: &Plan| -> Vec<String> {
        p.stages
            .iter()
            .filter(|s| s.stateful())
            .map(|s| s.name.clone())
            .collect()
    };
    if stateful(old) != stateful(new) {
        fixed.push("the set of stateful transforms");
    }
    if !fixed.is_empty() {
        return Err(format!(
            "{} changed, which cannot be swapped while running",
            fixed.join(", ")
        ));
    }
    Ok(new
        .stages
        .iter()
        .filter(|s| !old.stages.iter().any(|o| o.same_as(s)))
        .map(|s| s.name.clone())
        .collect())
}
