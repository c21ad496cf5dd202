//! Native code built with the binary: the stock components, precompiled by `build.rs`.

use wasmtime::component::Component;

use super::one_line;

/// Native code for a component, produced at build time by `build.rs` with this binary's
/// wasmtime and engine configuration.
#[derive(Debug, Clone, Copy)]
pub struct Precompiled(&'static [u8]);

impl Precompiled {
    /// # Safety
    /// `code` must be the output of wasmtime's `Engine::precompile_component`, unaltered:
    /// wasmtime checks that it matches the engine, but trusts the code itself.
    pub const unsafe fn new(code: &'static [u8]) -> Self {
        Precompiled(code)
    }
}

/// The precompiled code, if wasmtime finds it built for `engine`; `None` means compile.
pub(crate) fn load(engine: &wasmtime::Engine, name: &str, precompiled: Option<Precompiled>) -> Option<Component> {
    let Precompiled(code) = precompiled?;
    // SAFETY: `Precompiled::new`'s contract: the bytes are wasmtime's own precompiled output,
    // embedded in this binary at build time. wasmtime checks the rest (its version, the
    // target, every code-generation setting and the CPU's features).
    match unsafe { Component::deserialize(engine, code) } {
        Ok(component) => {
            tracing::debug!(component = name, "Loaded the component's precompiled code.");
            Some(component)
        }
        Err(e) => {
            tracing::debug!(component = name, reason = %one_line(&e), "Precompiled code does not fit this engine; compiling.");
            None
        }
    }
}
