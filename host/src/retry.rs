//! The one retry policy: capped exponential backoff with jitter, and an optional deadline.
//! MQTT reconnects use it; AWS API throttling (Kinesis `ProvisionedThroughputExceeded`, S3
//! `SlowDown`, DynamoDB conditional-write contention) will use it too, so every connector
//! backs off the same way and gives up the same way.
//!
//! # Async clients and the worker threads
//! The pipeline's threads are plain OS threads (reader, workers, writer). The AWS SDK is
//! async (tokio). Connectors that use it will own one small multi-thread tokio runtime
//! (created on first use, shared by the sources and sinks of a process) and call it through
//! `Runtime::block_on` from the reader or writer thread: the pipeline never becomes async,
//! the blocking is confined to the connector, and back-pressure stays the bounded channels'.
//! A long-running background task (enhanced fan-out subscriptions, lease renewal) is
//! spawned on that runtime and hands data to the reader thread over a bounded channel, as
//! the MQTT connection thread does today.

use std::time::{Duration, Instant};

/// Capped exponential backoff with jitter: the n-th wait is uniform in [cap/2, cap] with
/// cap = min(`max`, `base` × 2ⁿ).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// Give up once this moment has passed (`None`: never).
    deadline: Option<Instant>,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    /// 100 ms doubling to 30 s, no deadline (the MQTT reconnect policy).
    pub fn new() -> Self {
        Backoff::with(Duration::from_millis(100), Duration::from_secs(30))
    }

    /// `base` doubling to `max`.
    pub fn with(base: Duration, max: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Backoff {
            base: base.max(Duration::from_millis(1)),
            max: max.max(base),
            deadline: None,
            attempt: 0,
            seed,
        }
    }

    /// Give up after `total` from now.
    pub fn until(mut self, total: Duration) -> Self {
        self.deadline = Some(Instant::now() + total);
        self
    }

    /// Reset after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next wait, or `None` when it would end past the deadline (give up).
    pub fn next_delay(&mut self) -> Option<Duration> {
        let cap = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max)
            .as_millis() as u64;
        self.attempt += 1;
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let delay = Duration::from_millis(cap / 2 + self.seed % (cap / 2 + 1));
        match self.deadline {
            Some(d) if Instant::now() + delay > d => None,
            _ => Some(delay),
        }
    }

    /// Retry `op` while it fails with an error `retryable` says may pass, sleeping between
    /// tries; the last error once it is not retryable or the deadline is reached.
    pub fn retry<T, E>(
        &mut self,
        mut op: impl FnMut() -> Result<T, E>,
        retryable: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        loop {
            match op() {
                Ok(v) => {
                    self.reset();
                    return Ok(v);
                }
                Err(e) if retryable(&e) => match self.next_delay() {
                    Some(delay) => std::thread::sleep(delay),
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        let mut b = Backoff::new();
        let first = b.next_delay().expect("no deadline");
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            let d = b.next_delay().expect("no deadline");
            assert!(d <= Duration::from_secs(30));
        }
        assert!(b.next_delay().expect("no deadline") >= Duration::from_secs(15));
        b.reset();
        assert!(b.next_delay().expect("no deadline") <= Duration::from_millis(100));
    }

    #[test]
    fn retries_stop_at_a_non_retryable_error_or_the_deadline() {
        let mut tries = 0;
        let result: Result<(), &str> = Backoff::with(Duration::from_millis(1), Duration::from_millis(2)).retry(
            || {
                tries += 1;
                Err(if tries < 3 { "throttled" } else { "denied" })
            },
            |e| *e == "throttled",
        );
        assert_eq!((result, tries), (Err("denied"), 3));
        let mut tries = 0;
        let result: Result<(), &str> = Backoff::with(Duration::from_millis(20), Duration::from_millis(40))
            .until(Duration::from_millis(100))
            .retry(
                || {
                    tries += 1;
                    Err("throttled")
                },
                |_| true,
            );
        assert_eq!(result, Err("throttled"));
        assert!((2..=12).contains(&tries), "{tries} tries in 100 ms");
        let mut tries = 0;
        let ok = Backoff::with(Duration::from_millis(1), Duration::from_millis(1)).retry(
            || {
                tries += 1;
                if tries < 4 { Err(()) } else { Ok(tries) }
            },
            |_| true,
        );
        assert_eq!(ok, Ok(4));
    }
}
