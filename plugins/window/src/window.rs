//! Window arithmetic, pure and in microseconds: which windows an event time belongs to
//! (FL-01, FL-02), when two session windows merge (FL-03), and when a window fires and is
//! forgotten (FL-04, FL-05). Arithmetic is checked: an event whose windows would fall
//! outside the i64 range gets none.

/// A window `[start, end)`. Ordered by `end`, then `start`: the order windows fire in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounds {
    /// Exclusive end, in microseconds since the epoch.
    pub end: i64,
    /// Inclusive start, in microseconds since the epoch.
    pub start: i64,
}

impl Bounds {
    /// The window `[start, end)`.
    pub fn new(start: i64, end: i64) -> Self {
        Bounds { end, start }
    }

    /// The greatest event time inside the window (`end − 1`, Flink's `maxTimestamp`).
    pub fn max_timestamp(self) -> i64 {
        self.end - 1
    }

    /// Whether the default event-time trigger fires at `watermark` (FL-04).
    pub fn is_due(self, watermark: i64) -> bool {
        watermark >= self.max_timestamp()
    }

    /// Whether the window's state can be dropped at `watermark`: it is past its cleanup time
    /// `end − 1 + lateness` (FL-05).
    pub fn is_expired(self, watermark: i64, lateness: i64) -> bool {
        i128::from(watermark) >= i128::from(self.max_timestamp()) + i128::from(lateness)
    }

    /// Whether two windows intersect or touch, so that session windows merge (FL-03).
    pub fn touches(self, other: Bounds) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(self, other: Bounds) -> Bounds {
        Bounds::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// How event times map to windows. Durations are positive microseconds (checked by
/// [`crate::plan`]), and `|offset|` is below `size` (tumbling) or `slide` (hopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windowing {
    /// `[k·size + offset, (k+1)·size + offset)`.
    Tumbling { size: i64, offset: i64 },
    /// Windows of `size` starting at every `k·slide + offset`.
    Hopping { size: i64, slide: i64, offset: i64 },
    /// `[t, t + gap)` per event, merged per key while they touch.
    Session { gap: i64 },
}

impl Windowing {
    /// Append the windows `t` belongs to; false (and nothing appended) when they cannot be
    /// represented. Hopping windows come latest-start first.
    pub fn assign(self, t: i64, out: &mut Vec<Bounds>) -> bool {
        match self {
            Windowing::Tumbling { size, offset } => match aligned(t, offset, size, size) {
                Some(bounds) => {
                    out.push(bounds);
                    true
                }
                None => false,
            },
            Windowing::Hopping { size, slide, offset } => {
                let Some(last) = aligned(t, offset, slide, size) else {
                    return false;
                };
                let first = out.len();
                let mut start = i128::from(last.start);
                while start > i128::from(t) - i128::from(size) {
                    let (Ok(s), Ok(e)) = (i64::try_from(start), i64::try_from(start + i128::from(size))) else {
                        out.truncate(first);
                        return false;
                    };
                    out.push(Bounds::new(s, e));
                    start -= i128::from(slide);
                }
                true
            }
            Windowing::Session { gap } => match t.checked_add(gap) {
                Some(end) => {
                    out.push(Bounds::new(t, end));
                    true
                }
                None => false,
            },
        }
    }
}

/// The window of length `size` whose start is the latest grid point `k·step + offset` not
/// after `t` (Flink's `getWindowStartWithOffset`, with the negative-remainder fix: FL-01).
fn aligned(t: i64, offset: i64, step: i64, size: i64) -> Option<Bounds> {
    // In i64 when nothing overflows (every real event time), else in i128.
    if let Some(shifted) = t.checked_sub(offset)
        && let Some(start) = t.checked_sub(shifted.rem_euclid(step))
        && let Some(end) = start.checked_add(size)
    {
        return Some(Bounds::new(start, end));
    }
    let t = i128::from(t);
    let start = t - (t - i128::from(offset)).rem_euclid(i128::from(step));
    let end = start + i128::from(size);
    Some(Bounds::new(i64::try_from(start).ok()?, i64::try_from(end).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000;

    fn windows(w: Windowing, t: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        assert!(w.assign(t, &mut out));
        out.into_iter().map(|b| (b.start, b.end)).collect()
    }

    #[test]
    fn fl01_tumbling_windows_are_half_open_and_aligned_to_the_epoch() {
        let w = Windowing::Tumbling {
            size: 5_000 * MS,
            offset: 0,
        };
        assert_eq!(windows(w, 13_000 * MS), [(10_000 * MS, 15_000 * MS)]);
        assert_eq!(windows(w, 10_000 * MS), [(10_000 * MS, 15_000 * MS)]);
        assert_eq!(windows(w, 15_000 * MS - 1), [(10_000 * MS, 15_000 * MS)]);
        // An event exactly at `end` belongs to the next window.
        assert_eq!(windows(w, 15_000 * MS), [(15_000 * MS, 20_000 * MS)]);
        // Before the epoch the remainder is corrected, not truncated toward zero.
        assert_eq!(windows(w, -MS), [(-5_000 * MS, 0)]);
        assert_eq!(windows(w, -1), [(-5_000 * MS, 0)]);
    }

    #[test]
    fn fl01_an_offset_shifts_the_grid() {
        let hour = 3_600_000_000;
        let w = Windowing::Tumbling {
            size: hour,
            offset: hour / 4,
        };
        // 1:20 falls in 1:15–2:15.
        assert_eq!(windows(w, hour + hour / 3), [(hour + hour / 4, 2 * hour + hour / 4)]);
        // 1:10 falls in 0:15–1:15.
        assert_eq!(windows(w, hour + hour / 6), [(hour / 4, hour + hour / 4)]);
        let day = 24 * hour;
        let utc8 = Windowing::Tumbling {
            size: day,
            offset: -8 * hour,
        };
        // Daily windows for UTC+8 start at 16:00 UTC.
        assert_eq!(windows(utc8, day + 17 * hour), [(day + 16 * hour, 2 * day + 16 * hour)]);
    }

    #[test]
    fn fl02_a_hopping_event_belongs_to_size_over_slide_windows() {
        let w = Windowing::Hopping {
            size: 10_000 * MS,
            slide: 5_000 * MS,
            offset: 0,
        };
        assert_eq!(windows(w, 7_000 * MS), [(5_000 * MS, 15_000 * MS), (0, 10_000 * MS)]);
        let w = Windowing::Hopping {
            size: 10 * 60_000 * MS,
            slide: 60_000 * MS,
            offset: 0,
        };
        assert_eq!(windows(w, 123_456 * MS).len(), 10);
        // When slide does not divide size the count depends on the position.
        let w = Windowing::Hopping {
            size: 10,
            slide: 4,
            offset: 0,
        };
        assert_eq!(windows(w, 0), [(0, 10), (-4, 6), (-8, 2)]);
        assert_eq!(windows(w, 3), [(0, 10), (-4, 6)]);
        // slide == size is tumbling.
        let w = Windowing::Hopping {
            size: 5,
            slide: 5,
            offset: 1,
        };
        assert_eq!(windows(w, 5), [(1, 6)]);
    }

    #[test]
    fn fl03_sessions_start_at_the_event_and_touching_windows_merge() {
        let w = Windowing::Session { gap: 10_000 * MS };
        assert_eq!(windows(w, 0), [(0, 10_000 * MS)]);
        let a = Bounds::new(0, 10_000 * MS);
        assert!(a.touches(Bounds::new(10_000 * MS, 20_000 * MS)));
        assert_eq!(
            a.cover(Bounds::new(10_000 * MS, 20_000 * MS)),
            Bounds::new(0, 20_000 * MS)
        );
        assert!(!a.touches(Bounds::new(10_001 * MS, 20_001 * MS)));
        assert!(Bounds::new(5, 8).touches(a));
    }

    #[test]
    fn fl04_fl05_a_window_fires_at_end_minus_one_and_expires_after_lateness() {
        let b = Bounds::new(0, 5_000);
        assert!(!b.is_due(4_998));
        assert!(b.is_due(4_999));
        assert!(!b.is_expired(4_998, 0));
        assert!(b.is_expired(4_999, 0));
        assert!(!b.is_expired(5_000, 60));
        assert!(b.is_expired(5_059, 60));
        assert!(!b.is_expired(i64::MAX - 1, i64::MAX));
    }

    #[test]
    fn windows_beyond_the_i64_range_are_not_assigned() {
        let mut out = Vec::new();
        assert!(!Windowing::Tumbling { size: 10, offset: 0 }.assign(i64::MAX - 1, &mut out));
        assert!(!Windowing::Session { gap: 10 }.assign(i64::MAX - 5, &mut out));
        assert!(
            !Windowing::Hopping {
                size: 10,
                slide: 5,
                offset: 0
            }
            .assign(i64::MIN + 2, &mut out)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn windows_are_ordered_by_end_then_start() {
        let mut all = vec![Bounds::new(5, 15), Bounds::new(0, 10), Bounds::new(-10, 10)];
        all.sort();
        assert_eq!(all, [Bounds::new(-10, 10), Bounds::new(0, 10), Bounds::new(5, 15)]);
    }
}
