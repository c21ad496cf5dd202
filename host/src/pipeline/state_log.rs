//! What a stateful stage needs to rebuild its state after a failure in the middle of an
//! interval: its last snapshot, and what it was given successfully since (batches and
//! watermark advances, in order). After a
//! trap (or an error, which may have left the state half-updated) the worker makes a fresh
//! instance, restores the snapshot and replays those batches, so the failed batch leaves no
//! trace in the state. The log is bounded: past [`MAX_REPLAY_BYTES`] a fresh snapshot is taken
//! and the log starts again.

use arrow::array::RecordBatch;

/// Replay memory per stateful stage before it is snapshotted early.
pub(crate) const MAX_REPLAY_BYTES: usize = 64 << 20;

/// One thing a stateful stage was given.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A batch it processed.
    Batch(RecordBatch),
    /// A watermark it advanced to.
    Watermark(i64),
}

/// A stateful stage's last snapshot and the input it processed since.
#[derive(Debug, Default)]
pub(crate) struct StateLog {
    snapshot: Option<(u32, Vec<u8>)>,
    replay: Vec<Event>,
    bytes: usize,
}

impl StateLog {
    /// Start again from `snapshot` (`None`: the empty state of a fresh instance).
    pub(crate) fn reset(&mut self, snapshot: Option<(u32, Vec<u8>)>) {
        self.snapshot = snapshot;
        self.replay.clear();
        self.bytes = 0;
    }

    /// A batch the stage processed successfully; `true` when the log should be snapshotted.
    pub(crate) fn record(&mut self, batch: &RecordBatch) -> bool {
        self.bytes += batch.get_array_memory_size();
        self.replay.push(Event::Batch(batch.clone()));
        self.bytes > MAX_REPLAY_BYTES
    }

    /// A watermark the stage advanced to successfully.
    pub(crate) fn record_watermark(&mut self, micros: i64) {
        self.replay.push(Event::Watermark(micros));
    }

    /// The snapshot to restore.
    pub(crate) fn snapshot(&self) -> Option<&(u32, Vec<u8>)> {
        self.snapshot.as_ref()
    }

    /// What to replay after restoring, in order.
    pub(crate) fn replay(&self) -> &[Event] {
        &self.replay
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(n: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n as i64))]).expect("batch")
    }

    #[test]
    fn the_log_grows_until_its_bound_and_resets_with_a_snapshot() {
        let mut log = StateLog::default();
        assert!(!log.record(&batch(10)));
        log.record_watermark(5);
        assert!(!log.record(&batch(10)));
        assert_eq!(log.replay().len(), 3);
        assert!(matches!(log.replay()[1], Event::Watermark(5)));
        assert!(log.record(&batch(MAX_REPLAY_BYTES / 8 + 1)), "past the bound");
        log.reset(Some((1, vec![7])));
        assert!(log.replay().is_empty());
        assert_eq!(log.snapshot(), Some(&(1, vec![7])));
    }
}
