//! HIGH level: a pipeline file becomes a [`Plan`] only after every check (schemas resolved
//! through every transform's `describe`, components compiled, sink settings checked against
//! the final schema); the plan is then run by [`run::run`]. While it runs, [`reload`] swaps
//! in changed versions of the plan at chunk boundaries.
//!
//! Nothing past the plan sees TOML or JSON values.

pub mod budget;
mod commit;
mod head;
pub mod leased;
mod lineage;
mod ordered;
pub mod outcome;
pub mod plan;
pub mod reload;
mod resume;
pub mod run;
pub mod sinks;
mod stage;
pub mod stage_plan;
mod state_log;
pub mod trial;
pub mod watermark;
mod worker;
mod writer;

pub use outcome::{RunOptions, RunSummary};
pub use plan::{Plan, PlanError, StagePlan};
