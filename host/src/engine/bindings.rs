//! Host side of the `sluice:transform` WIT world: generated bindings, the store's data, the
//! `log` import, and a linker holding exactly what a transform may import.

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::Limits;

mod generated {
    wasmtime::component::bindgen!({
        world: "transformer",
        path: "../wit",
    });
}

pub(crate) use generated::exports::sluice::transform::transform as wit;
pub(crate) use generated::sluice::transform::types as wit_types;
pub(crate) use generated::{Transformer, TransformerPre};

/// What each store holds: the sandbox's (empty) WASI context, its limits, and its label.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    label: String,
}

impl HostState {
    pub(crate) fn new(label: &str, limits: &Limits) -> Self {
        HostState {
            wasi: sandbox_wasi(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .table_elements(1_000_000)
                .instances(16)
                .memories(4)
                .tables(16)
                .trap_on_grow_failure(true)
                .build(),
            label: label.to_owned(),
        }
    }
}

/// A WASI context with nothing behind it: no preopened folders, no environment, no
/// arguments, no network, stdio discarded, and clocks frozen at the epoch. Language runtimes
/// (Rust's std among them) import WASI interfaces at link time; this satisfies those
/// imports while giving a transform no reach outside its inputs.
fn sandbox_wasi() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
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
        const MAX: usize = 4096;
        let message = if message.len() > MAX {
            let mut end = MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}… ({} bytes)", &message[..end], message.len())
        } else {
            message
        };
        let stage = self.label.as_str();
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
    Transformer::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}
