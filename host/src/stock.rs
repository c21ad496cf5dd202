//! The stock transforms shipped inside the binary: each component built from `plugins/` by
//! `build.rs`, with its native code precompiled there, so the first run starts at once.

use crate::engine::Precompiled;

/// One stock transform.
#[derive(Debug)]
pub struct Stock {
    /// Its name in `plugin = "…"`.
    pub name: &'static str,
    /// The component's bytes: its identity (digest) and what is compiled when the
    /// precompiled code does not fit the engine.
    pub component: &'static [u8],
    /// The SHA-256 of `component` (see [`crate::engine::digest_of`]), computed by `build.rs`.
    pub digest: &'static str,
    /// Native code for the default engine flavour, when the build could make it (not when
    /// cross-compiling).
    pub precompiled: Option<Precompiled>,
}

include!(concat!(env!("OUT_DIR"), "/stock.rs"));

/// Stock plugin `name`.
pub fn lookup(name: &str) -> Option<&'static Stock> {
    STOCK.iter().find(|s| s.name == name)
}

/// Every stock plugin's name.
pub fn names() -> Vec<&'static str> {
    STOCK.iter().map(|s| s.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_digest_is_its_components_own() {
        for stock in STOCK {
            assert_eq!(
                stock.digest,
                crate::engine::digest_of(stock.component),
                "{}",
                stock.name
            );
        }
    }
}
