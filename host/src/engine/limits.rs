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
    /// Memory cap per instance: all its linear memories and tables together. The default,
    /// 512 MiB, holds a few decoded batches of wide rows plus their IPC copies with room to
    /// spare; a transform that wants more is almost surely leaking or amplifying. It also
    /// bounds what the host takes from one call: the output of a call, measured as the bytes
    /// it would take fully expanded (dictionaries and views unpacked), may not exceed it.
    pub max_memory_bytes: usize,
    /// Wall-clock budget for one input batch: every call made for it, bisection included,
    /// shares it. The default, 30 s, is ~1000× what a stock transform needs for an 8192-row
    /// batch: it catches infinite loops, not slowness.
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

/// Columns (counting nested fields) an output schema may have. Writers keep buffers per
/// column, so a schema of 100,000 columns costs the host far more than the guest spent
/// declaring it; real tables stay well under a thousand.
pub const MAX_OUTPUT_COLUMNS: usize = 10_000;

/// Core instances (and tables) one component instance may create.
pub const MAX_CORE_INSTANCES: usize = 256;
/// Linear memories one component instance may create.
pub const MAX_MEMORIES: usize = 16;

/// Bytes a table element costs the host (a pointer), counted against the memory cap.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// The memory cap of one instance: every linear memory and every table of every core
/// instance inside the component, counted together. wasmtime's `StoreLimits` caps each memory
/// on its own, so a component with four memories could use four times the cap.
#[derive(Debug)]
pub(crate) struct InstanceLimiter {
    cap: usize,
    used: usize,
    /// What the last permitted growth added, taken back if the growth then failed.
    last_growth: usize,
}

impl InstanceLimiter {
    pub(crate) fn new(cap: usize) -> Self {
        InstanceLimiter {
            cap,
            used: 0,
            last_growth: 0,
        }
    }

    fn grow(&mut self, what: &str, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let added = desired.saturating_sub(current);
        let total = self.used.saturating_add(added);
        if total > self.cap {
            // An error, not `Ok(false)`: the guest traps with this message, where a failed
            // `memory.grow` would surface as an allocator abort that names nothing.
            return Err(wasmtime::format_err!(
                "instance memory cap of {} MiB reached: growing a {what} to {} MiB would bring the instance to {} MiB (all memories and tables count)",
                self.cap >> 20,
                desired >> 20,
                total >> 20
            ));
        }
        self.used = total;
        self.last_growth = added;
        Ok(true)
    }

    fn failed(&mut self) {
        self.used = self.used.saturating_sub(self.last_growth);
        self.last_growth = 0;
    }
}

impl wasmtime::ResourceLimiter for InstanceLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow("linear memory", current, desired)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.failed();
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(
            "table",
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.failed();
        Ok(())
    }

    // The memory cap above already bounds what memories and tables hold; these counts only
    // stop a component from spreading itself over so many objects that their fixed costs
    // add up. A Rust component has a handful of core instances; a Python one made by
    // componentize-py links the interpreter and its extension modules as one core instance
    // each (38 for a plain app), with a table per module, and several memories.
    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
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
