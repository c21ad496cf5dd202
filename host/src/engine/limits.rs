//! Per-instance limits and the epoch ticker that enforces call deadlines.
//!
//! Deadlines use epoch interruption: a background thread bumps the engine's epoch every
//! [`TICK`], and each call into a component gets a deadline of a number of ticks. Its cost
//! is a load and compare at loop back-edges and function entries, far cheaper than fuel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Epoch period.
pub const TICK: Duration = Duration::from_millis(10);

/// What one transform instance may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap per instance. The default, 512 MiB, holds a few decoded batches of
    /// wide rows plus their IPC copies with room to spare; a transform that wants more is
    /// almost surely leaking or amplifying.
    pub max_memory_bytes: usize,
    /// Wall-clock budget for one call (one batch). The default, 30 s, is ~1000× what a
    /// stock transform needs for an 8192-row batch: it catches infinite loops, not slowness.
    pub call_timeout: Duration,
    /// Output rows one call may emit, as a multiple of its input rows. The default, 16×,
    /// leaves room for explode-style transforms and stops unbounded amplification.
    pub max_output_ratio: u32,
    /// Optional deterministic budget per call, in fuel units (about one per wasm
    /// instruction). Off by default: fuel instruments every instruction, so a component with
    /// a budget is compiled separately with fuel metering. Use it when a batch must fail the
    /// same way on every machine; the deadline still applies.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_bytes: 512 * 1024 * 1024,
            call_timeout: Duration::from_secs(30),
            max_output_ratio: 16,
            fuel: None,
        }
    }
}

impl Limits {
    /// The most rows one call may emit for `input_rows` rows in.
    pub fn max_output_rows(ratio: u32, input_rows: usize) -> usize {
        input_rows.max(1).saturating_mul(ratio as usize)
    }

    /// The deadline in epoch ticks.
    pub fn deadline_ticks(&self) -> u64 {
        (self.call_timeout.as_millis() / TICK.as_millis()).max(1) as u64
    }
}

/// Bumps the engine epoch until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: wasmtime::Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new().name("sluice-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "Could not start the epoch ticker; call deadlines will not fire.");
        }
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
