//! Event-time watermarks with bounded out-of-orderness, computed by the host.
//!
//! Each source partition (a file, a subscription, a shard) has the greatest event time seen
//! in it. A partition's watermark is that minus `max_out_of_orderness` minus 1 µs (Flink's
//! `BoundedOutOfOrdernessWatermarks`, FL-06), and the stage's watermark is the minimum over
//! its partitions (FL-07). A partition the source opened but that has not delivered event
//! time yet holds the watermark back too, so a partition whose first records come later
//! (interleaved files, a new shard) never finds them late. A partition that saw nothing for
//! `idle_timeout` stops holding the others back (FL-08), and so does a closed one (a file
//! read to its end, a closed shard). The watermark never goes back. Pure: the caller passes
//! the time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};

/// Whether a column type can carry event time: any timestamp, or int64 epoch milliseconds.
pub fn is_event_time(ty: &DataType) -> bool {
    matches!(ty, DataType::Timestamp(_, _) | DataType::Int64)
}

/// The greatest event time in column `column` of `batch`, in microseconds (nulls ignored).
pub fn max_event_micros(batch: &RecordBatch, column: usize) -> Option<i64> {
    let col = batch.column(column);
    let millis;
    let col = if col.data_type() == &DataType::Int64 {
        millis = cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None)).ok()?;
        &millis
    } else {
        col
    };
    let micros = cast(col, &DataType::Timestamp(TimeUnit::Microsecond, None)).ok()?;
    arrow::compute::max(micros.as_primitive::<TimestampMicrosecondType>())
}

/// Settings of one stage's watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkSettings {
    /// How far behind the greatest event time an event may arrive and still be on time.
    pub max_out_of_orderness: Duration,
    /// A partition without events for this long no longer holds the watermark back.
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Partition {
    /// `None` until the partition delivered event time.
    max_micros: Option<i64>,
    last_event: Instant,
    closed: bool,
}

/// The watermark of one stage over its source partitions.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    settings: WatermarkSettings,
    partitions: BTreeMap<String, Partition>,
    emitted: Option<i64>,
}

impl WatermarkTracker {
    /// A tracker that has seen nothing.
    pub fn new(settings: WatermarkSettings) -> Self {
        WatermarkTracker {
            settings,
            partitions: BTreeMap::new(),
            emitted: None,
        }
    }

    /// The source opened `partition` at `now`: until it delivers event time (or idles, or
    /// ends) it holds the watermark back.
    pub fn announce(&mut self, partition: &str, now: Instant) {
        let p = self.partitions.entry(partition.to_owned()).or_insert(Partition {
            max_micros: None,
            last_event: now,
            closed: false,
        });
        p.closed = false;
        p.last_event = now;
    }

    /// Events up to `max_micros` were seen in `partition` at `now`.
    pub fn observe(&mut self, partition: &str, max_micros: i64, now: Instant) {
        let p = self.partitions.entry(partition.to_owned()).or_insert(Partition {
            max_micros: Some(max_micros),
            last_event: now,
            closed: false,
        });
        p.max_micros = Some(p.max_micros.map_or(max_micros, |m| m.max(max_micros)));
        p.last_event = now;
        p.closed = false;
    }

    /// `partition` will see no more events.
    pub fn close(&mut self, partition: &str) {
        if let Some(p) = self.partitions.get_mut(partition) {
            p.closed = true;
        }
    }

    /// The watermark at `now`, if it rose since the last call that returned one.
    pub fn advance(&mut self, now: Instant) -> Option<i64> {
        let lag = self.settings.max_out_of_orderness.as_micros() as i64 + 1;
        let idle = self.settings.idle_timeout;
        let active = |p: &&Partition| !p.closed && !idle.is_some_and(|d| now.duration_since(p.last_event) >= d);
        let mut candidates = self.partitions.values().filter(active).peekable();
        let wm = if candidates.peek().is_some() {
            // An active partition with no event time yet holds everything back.
            candidates
                .map(|p| p.max_micros.map(|m| m.saturating_sub(lag)))
                .collect::<Option<Vec<i64>>>()?
                .into_iter()
                .min()
        } else {
            // Every partition is idle or closed: the greatest time seen anywhere holds.
            self.partitions
                .values()
                .filter_map(|p| p.max_micros)
                .map(|m| m.saturating_sub(lag))
                .max()
        }?;
        if self.emitted.is_some_and(|e| wm <= e) {
            return None;
        }
        self.emitted = Some(wm);
        Some(wm)
    }

    /// The last watermark returned.
    pub fn current(&self) -> Option<i64> {
        self.emitted
    }

    /// What a checkpoint keeps: each partition's greatest time, and the watermark.
    pub fn state(&self) -> (BTreeMap<String, i64>, Option<i64>) {
        (
            self.partitions
                .iter()
                .filter_map(|(k, p)| Some((k.clone(), p.max_micros?)))
                .collect(),
            self.emitted,
        )
    }

    /// Continue from a checkpoint's state; restored partitions count as closed until they
    /// see events again.
    pub fn restore(&mut self, partitions: &BTreeMap<String, i64>, emitted: Option<i64>, now: Instant) {
        for (name, max) in partitions {
            self.partitions.insert(
                name.clone(),
                Partition {
                    max_micros: Some(*max),
                    last_event: now,
                    closed: true,
                },
            );
        }
        self.emitted = emitted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn tracker(ooo_secs: u64, idle: Option<u64>) -> WatermarkTracker {
        WatermarkTracker::new(WatermarkSettings {
            max_out_of_orderness: Duration::from_secs(ooo_secs),
            idle_timeout: idle.map(Duration::from_secs),
        })
    }

    #[test]
    fn fl06_the_watermark_trails_the_greatest_time_by_the_bound_and_one_microsecond() {
        let t0 = Instant::now();
        let mut w = tracker(5, None);
        assert_eq!(w.advance(t0), None, "nothing seen, no watermark");
        w.observe("a", 100 * S, t0);
        assert_eq!(w.advance(t0), Some(95 * S - 1));
        w.observe("a", 90 * S, t0);
        assert_eq!(w.advance(t0), None, "an older event does not move it");
        w.observe("a", 101 * S, t0);
        assert_eq!(w.advance(t0), Some(96 * S - 1));
    }

    #[test]
    fn fl07_the_slowest_partition_holds_the_watermark() {
        let t0 = Instant::now();
        let mut w = tracker(0, None);
        w.observe("a", 100 * S, t0);
        w.observe("b", 50 * S, t0);
        assert_eq!(w.advance(t0), Some(50 * S - 1));
        w.observe("b", 70 * S, t0);
        assert_eq!(w.advance(t0), Some(70 * S - 1));
    }

    #[test]
    fn fl08_an_idle_partition_stops_holding_it_back_and_it_never_goes_back() {
        let t0 = Instant::now();
        let mut w = tracker(0, Some(10));
        w.observe("a", 100 * S, t0);
        w.observe("b", 50 * S, t0);
        assert_eq!(w.advance(t0), Some(50 * S - 1));
        let later = t0 + Duration::from_secs(11);
        w.observe("a", 120 * S, later);
        assert_eq!(w.advance(later), Some(120 * S - 1), "b is idle");
        w.observe("b", 60 * S, later);
        assert_eq!(w.advance(later), None, "b is back, but the watermark does not go back");
        assert_eq!(w.current(), Some(120 * S - 1));
    }

    #[test]
    fn an_announced_partition_holds_the_watermark_until_it_delivers_idles_or_ends() {
        let t0 = Instant::now();
        let mut w = tracker(0, Some(10));
        w.announce("late", t0);
        w.observe("early", 100 * S, t0);
        assert_eq!(w.advance(t0), None, "`late` has not delivered yet");
        w.observe("late", 40 * S, t0);
        assert_eq!(w.advance(t0), Some(40 * S - 1));
        w.announce("third", t0);
        w.observe("late", 90 * S, t0);
        assert_eq!(w.advance(t0), None, "`third` holds it");
        w.close("third");
        assert_eq!(w.advance(t0), Some(90 * S - 1), "an ended partition does not");
        w.announce("quiet", t0);
        w.observe("late", 95 * S, t0 + Duration::from_secs(11));
        w.observe("early", 120 * S, t0 + Duration::from_secs(11));
        assert_eq!(
            w.advance(t0 + Duration::from_secs(11)),
            Some(95 * S - 1),
            "an announced partition that stays silent idles out"
        );
    }

    #[test]
    fn a_closed_partition_does_not_hold_it_back_and_state_round_trips() {
        let t0 = Instant::now();
        let mut w = tracker(1, None);
        w.observe("f1", 100 * S, t0);
        w.observe("f2", 10 * S, t0);
        w.close("f2");
        assert_eq!(w.advance(t0), Some(99 * S - 1));
        w.close("f1");
        w.observe("f3", 200 * S, t0);
        assert_eq!(w.advance(t0), Some(199 * S - 1));
        let (parts, emitted) = w.state();
        let mut r = tracker(1, None);
        r.restore(&parts, emitted, t0);
        assert_eq!(r.current(), Some(199 * S - 1));
        assert_eq!(r.advance(t0), None);
        r.observe("f3", 201 * S, t0);
        assert_eq!(r.advance(t0), Some(200 * S - 1));
    }
}
