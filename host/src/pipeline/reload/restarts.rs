//! The reload controller's outer loop: a run that a reload stopped for a restart is started
//! again from its final checkpoint with the new plan, the stages and sinks the reload added
//! or removed passed on, as many times as reloads ask.

use super::watch::Restart;
use crate::pipeline::Plan;
use crate::pipeline::outcome::{RunError, RunOptions, RunSummary};

/// Run `plan`, and again after each restart a reload asked for; every segment's plan and
/// outcome, in order.
pub fn run(mut plan: Plan, mut options: RunOptions) -> Vec<(Plan, Result<RunSummary, RunError>)> {
    let mut segments = Vec::new();
    // One status for every segment: `sluice status` keeps the reload history across them.
    options.status.get_or_insert_with(Default::default);
    if crate::pipeline::leased::leased(&plan) {
        let result = crate::pipeline::leased::run(&plan, &options);
        return vec![(plan, result)];
    }
    loop {
        let mut result = crate::pipeline::run::run(&plan, &options);
        let restart = result.as_mut().ok().and_then(|s| {
            let next = s.restart_with.take();
            s.restarting = next.is_some();
            next
        });
        segments.push((plan, result));
        let Some((next_plan, components, changes)) = restart else {
            return segments;
        };
        tracing::info!("Restarting from the checkpoint with the new version of the pipeline.");
        plan = *next_plan;
        options.reload_changes = changes;
        options.components = components.iter().map(|(c, _)| c.clone()).collect();
        if let Some(r) = options.reload.as_mut() {
            r.components = components;
            r.restart = Restart::default();
        }
    }
}
