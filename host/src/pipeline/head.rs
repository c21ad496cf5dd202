//! The head of a single chain: the stateless stages before its first stateful one, run on
//! the threads that decode the chain's chunks, so that the one worker a stateful stage
//! allows runs only the stages from there on.
//!
//! The contract lets a stateless transform be "instantiated once per worker and fed batches
//! in any order", so each decoding thread runs instances of its own; the chunks still reach
//! the worker in input order (`ordered.rs`). A stage with a watermark ends the head, as its
//! watermark must see every chunk. A reload changes the head with the chunks read under the
//! new plan (each chunk says its plan generation): the head's stages are started afresh for
//! it (stateless: nothing to carry over). A chunk the head took under another generation
//! than the worker's stages are of (the worker's swap failed) is decoded again and run whole
//! by the worker (`Worker::complete_ahead`).

use std::sync::Arc;

use super::plan::Plan;
use super::reload::Generations;
use super::worker::{Partial, Worker, WorkerError};
use crate::record::Chunk;

/// How many stages at the start of `plan`'s chain run ahead of its worker: none when the
/// chain has no stateful stage (it is single only when the pipeline says `workers = 1`),
/// otherwise those before the first stage that is stateful or has a watermark.
pub(crate) fn length(plan: &Plan) -> usize {
    if plan.workers != 1 || !plan.stages.iter().any(|s| s.stateful()) {
        return 0;
    }
    plan.stages
        .iter()
        .take_while(|s| !s.stateful() && s.watermark.is_none())
        .count()
}

/// One decoding thread's instances of the head.
pub(crate) struct Head {
    /// Names this thread's instances (the worker is 0).
    id: usize,
    generations: Arc<Generations>,
    /// The generation `stages` are of.
    generation: u64,
    /// Instances of the head's stages and the head's length; none when the head is empty or
    /// its stages could not start (the worker then runs them).
    stages: Option<(Worker, usize)>,
}

impl Head {
    /// The head of the first plan.
    pub(crate) fn new(generations: Arc<Generations>, id: usize) -> Head {
        let stages = start(&generations.plan(0), id);
        Head {
            id,
            generations,
            generation: 0,
            stages,
        }
    }

    /// Run `partial`, the decoded rows of `chunk`, through the head of the chunk's plan.
    pub(crate) fn run(&mut self, chunk: &Chunk, partial: &mut Partial) -> Result<(), WorkerError> {
        if chunk.generation != self.generation {
            self.generation = chunk.generation;
            self.stages = start(&self.generations.plan(self.generation), self.id);
        }
        match &mut self.stages {
            Some((worker, length)) => worker.advance(chunk, partial, *length, self.generation),
            None => Ok(()),
        }
    }
}

/// Instances of `plan`'s head, if it has one and they start.
fn start(plan: &Plan, id: usize) -> Option<(Worker, usize)> {
    let length = length(plan);
    if length == 0 {
        return None;
    }
    let mut head = plan.clone();
    head.stages.truncate(length);
    match Worker::new(&head, id, &[], &[]) {
        Ok(worker) => Some((worker, length)),
        Err(e) => {
            tracing::warn!(error = %e, "The stateless stages at the head of the chain could not start on a decoding thread; the worker runs them.");
            None
        }
    }
}
