//! The wasmtime configuration of an engine flavour.
//!
//! `build.rs` includes this file as well, to precompile the stock components with exactly the
//! configuration the binary runs them with, so it may use nothing but wasmtime. Whatever
//! changes here changes wasmtime's compatibility hash: a precompiled component that no longer
//! matches is refused by wasmtime and compiled again at first use (see `Engine::load`).

/// The configuration for components run with per-call deadlines (`epoch_deadlines`) and,
/// when `fuel`, with fuel metering (a separate compilation: fuel instruments every
/// instruction).
pub(crate) fn wasmtime_config(epoch_deadlines: bool, fuel: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    // Deadlines per call without fuel's per-instruction cost (see `limits`).
    config.epoch_interruption(epoch_deadlines);
    config.consume_fuel(fuel);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // `SLUICE_PERF_MAP=1` writes /tmp/perf-<pid>.map, so that `perf report` names the
    // components' functions (those built with a name section) instead of bare addresses.
    if std::env::var_os("SLUICE_PERF_MAP").is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}
