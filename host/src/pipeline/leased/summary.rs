//! The worker's summary: every shard run's, added up.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::pipeline::outcome::RunSummary;
use crate::sink::dead_letter::DeadLetterSummary;

/// A summary of nothing yet.
pub(super) fn empty_summary() -> RunSummary {
    RunSummary {
        rows_read: 0,
        bytes_read: 0,
        rows_written: 0,
        files: Vec::new(),
        sinks: Vec::new(),
        dead_letters: DeadLetterSummary::default(),
        elapsed: Duration::ZERO,
        resumed_from: None,
        checkpoints: 0,
        slowest_checkpoint: Duration::ZERO,
        stopped: false,
        over_budget: false,
        lag: BTreeMap::new(),
        state_bytes: Vec::new(),
        restart_with: None,
        restarting: false,
    }
}

/// Add a shard run's summary to the worker's.
pub(super) fn merge(into: &mut RunSummary, s: RunSummary) {
    into.rows_read += s.rows_read;
    into.bytes_read += s.bytes_read;
    into.rows_written += s.rows_written;
    into.files.extend(s.files);
    for report in s.sinks {
        match into.sinks.iter_mut().find(|r| r.name == report.name) {
            Some(r) => {
                r.rows += report.rows;
                r.files.extend(report.files);
            }
            None => into.sinks.push(report),
        }
    }
    into.dead_letters.count += s.dead_letters.count;
    for (stage, n) in s.dead_letters.by_stage {
        *into.dead_letters.by_stage.entry(stage).or_default() += n;
    }
    into.dead_letters.files.extend(s.dead_letters.files);
    into.checkpoints += s.checkpoints;
    into.slowest_checkpoint = into.slowest_checkpoint.max(s.slowest_checkpoint);
    into.lag.extend(s.lag);
    into.state_bytes.extend(s.state_bytes);
}
