//! Host side of the `sluice:transform` WIT world: generated bindings, the store's data, the
//! `log` import, and a linker holding exactly what a transform may import.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{HasData, HasSelf, Linker, Resource, ResourceTable};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::{InstanceLimiter, Limits};

mod generated {
    wasmtime::component::bindgen!({
        world: "projecting-transformer",
        path: "../wit",
    });
}

pub(crate) use generated::ProjectingTransformer;
pub(crate) use generated::exports::sluice::transform::keyed_state as wit_keyed;
pub(crate) use generated::exports::sluice::transform::projection as wit_projection;
pub(crate) use generated::exports::sluice::transform::transform as wit;
pub(crate) use generated::sluice::transform::types as wit_types;

/// What each store holds: the sandbox's (empty) WASI context, its limits, its label and the
/// gate its log lines pass.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: InstanceLimiter,
    label: String,
    log: LogGate,
}

impl HostState {
    /// `seed` seeds the instance's WASI random (see [`seed`]).
    pub(crate) fn new(label: &str, limits: &Limits, seed: [u8; 32]) -> Self {
        HostState {
            wasi: sandbox_wasi(seed),
            table: ResourceTable::new(),
            limits: InstanceLimiter::new(limits.max_memory_bytes),
            label: label.to_owned(),
            log: LogGate::default(),
        }
    }

    /// Restart the instance's WASI random from `seed`. Nothing else in the context holds
    /// state (streams and pollables live in the resource table), so it is rebuilt whole.
    pub(crate) fn reseed(&mut self, seed: [u8; 32]) {
        self.wasi = sandbox_wasi(seed);
    }
}

/// The seed of an instance's WASI random: SHA-256 over the component's digest, the
/// instance's label (pipeline, stage, worker) and the state it runs from (empty for a fresh
/// instance, the snapshot's bytes after `snapshot` or `restore`). A replayed batch therefore
/// sees the same random bytes as its first run, and two runs of the same input agree.
pub(crate) fn seed(digest: &str, label: &str, state: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [digest.as_bytes(), label.as_bytes(), state] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Bytes of the deterministic random stream before it repeats (see [`sandbox_wasi`]).
const RANDOM_CYCLE: usize = 16 * 1024;

/// Most random bytes one WASI call may ask for (the default, 64 MiB, is a host allocation
/// the guest picks).
const MAX_RANDOM_CALL: u64 = 64 * 1024;

/// A WASI context with nothing behind it: no preopened folders, no environment, no
/// arguments, no network, stdio discarded, clocks frozen at the epoch, and random numbers
/// drawn from a deterministic stream. Language runtimes (Rust's std among them) import WASI
/// interfaces at link time; this satisfies those imports while giving a transform no reach
/// outside its inputs.
///
/// The random stream is SHA-256 of `seed` and a counter, cycled every [`RANDOM_CYCLE`]
/// bytes: enough for hash-map keys and identifiers, not for secrets, which a transform has
/// no business with.
fn sandbox_wasi(seed: [u8; 32]) -> WasiCtx {
    let mut stream = Vec::with_capacity(RANDOM_CYCLE);
    let mut counter = 0u64;
    while stream.len() < RANDOM_CYCLE {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(counter.to_le_bytes());
        stream.extend_from_slice(&h.finalize());
        counter += 1;
    }
    let insecure_seed = u128::from_le_bytes(stream[..16].try_into().unwrap_or_default());
    let insecure = stream[16..].iter().chain(&stream[..16]).copied().collect();
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(wasmtime_wasi::Deterministic::new(stream))
        .insecure_random(wasmtime_wasi::Deterministic::new(insecure))
        .insecure_random_seed(insecure_seed)
        .max_random_size(MAX_RANDOM_CALL)
        .build()
}

struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// `wasi:clocks/monotonic-clock` with timers that are due at once. wasmtime-wasi's timers
/// wait on the host's real clock, inside the host call, where epoch interruption cannot reach:
/// a guest's hour-long sleep would block its worker for an hour whatever the deadline, and
/// timing a sleep would read real time through the frozen clock. Here the clock stands still
/// and every timer resolves immediately, so a sleeping guest returns to running wasm, where
/// the deadline applies.
struct FrozenTimers;

impl HasData for FrozenTimers {
    type Data<'a> = FrozenTimersView<'a>;
}

struct FrozenTimersView<'a>(WasiClocksCtxView<'a>);

impl monotonic_clock::Host for FrozenTimersView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        monotonic_clock::Host::now(&mut self.0)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        monotonic_clock::Host::resolution(&mut self.0)
    }

    fn subscribe_instant(&mut self, _when: monotonic_clock::Instant) -> wasmtime::Result<Resource<DynPollable>> {
        monotonic_clock::Host::subscribe_duration(&mut self.0, 0)
    }

    fn subscribe_duration(&mut self, _duration: monotonic_clock::Duration) -> wasmtime::Result<Resource<DynPollable>> {
        monotonic_clock::Host::subscribe_duration(&mut self.0, 0)
    }
}

/// Guest log lines an instance may write per [`LOG_WINDOW`]; past that they are counted and
/// reported as one "suppressed" line when the next window opens (or the instance goes).
const LOG_LINES: u32 = 50;
const LOG_WINDOW: Duration = Duration::from_secs(1);
/// Longest guest message kept, in bytes after escaping.
const LOG_MAX_BYTES: usize = 1024;

/// Per-instance rate limit of guest log lines.
#[derive(Default)]
struct LogGate {
    window: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

impl LogGate {
    /// Whether a line may pass now, and how many were suppressed before it (to report).
    fn admit(&mut self, now: Instant) -> (bool, u64) {
        let mut reported = 0;
        if self.window.is_none_or(|w| now.duration_since(w) >= LOG_WINDOW) {
            self.window = Some(now);
            self.lines = 0;
            reported = std::mem::take(&mut self.suppressed);
        }
        if self.lines < LOG_LINES {
            self.lines += 1;
            (true, reported)
        } else {
            self.suppressed += 1;
            (false, reported)
        }
    }
}

fn report_suppressed(stage: &str, n: u64) {
    if n > 0 {
        tracing::warn!(
            stage,
            "suppressed {n} log lines from the transform (over {LOG_LINES} per second)"
        );
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        report_suppressed(&self.label, self.log.suppressed);
    }
}

/// A guest message made safe for a log line: control characters (newlines among them, which
/// would forge host log lines), Unicode line separators and bidirectional overrides escaped,
/// and cut to [`LOG_MAX_BYTES`].
pub(crate) fn sanitize_log(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(LOG_MAX_BYTES + 32));
    for (i, c) in message.char_indices() {
        if out.len() >= LOG_MAX_BYTES {
            out.push_str(&format!("… ({} bytes, {} not shown)", message.len(), message.len() - i));
            break;
        }
        let special =
            c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if special {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl generated::sluice::transform::log::Host for HostState {
    fn log(&mut self, level: generated::sluice::transform::log::Level, message: String) {
        use generated::sluice::transform::log::Level;
        let stage = self.label.as_str();
        let (admitted, suppressed) = self.log.admit(Instant::now());
        report_suppressed(stage, suppressed);
        if !admitted {
            return;
        }
        let message = sanitize_log(&message);
        match level {
            Level::Trace => tracing::trace!(stage, "{message}"),
            Level::Debug => tracing::debug!(stage, "{message}"),
            Level::Info => tracing::info!(stage, "{message}"),
            Level::Warn => tracing::warn!(stage, "{message}"),
            Level::Error => tracing::error!(stage, "{message}"),
        }
    }
}

impl generated::sluice::transform::types::Host for HostState {}

/// The linker every transform is instantiated with.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    // Replace wasmtime-wasi's real-time timers with ones that are due at once.
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<HostState, FrozenTimers>(&mut linker, |s| {
        FrozenTimersView(wasmtime_wasi::clocks::WasiClocksView::clocks(s))
    })?;
    linker.allow_shadowing(false);
    ProjectingTransformer::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}
