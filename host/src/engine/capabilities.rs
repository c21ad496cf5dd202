//! Which imports a transform component may have. A pipeline can grant nothing beyond the
//! contract yet; this is the seam where a future allow-list (e.g. `grant = ["network"]`)
//! plugs in.
//!
//! Language runtimes import WASI interfaces even when the code never uses them (Rust's std
//! imports environment, filesystem and clocks). Those are linked with nothing behind them: no
//! preopened folders, an empty environment, clocks frozen at the epoch, stdio discarded. A
//! component that imports a capability that would reach outside — sockets, HTTP, or anything
//! unknown — is refused before it is instantiated, naming the import.

/// What an import gives a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// The Sluice contract itself (`sluice:transform/*`).
    Contract,
    /// A WASI interface linked with nothing behind it.
    Inert,
    /// Network access (`wasi:sockets`, `wasi:http`).
    Network,
    /// Anything this host does not know.
    Unknown,
}

impl Capability {
    /// Whether a pipeline (which can grant nothing yet) allows it.
    pub fn allowed(self) -> bool {
        matches!(self, Capability::Contract | Capability::Inert)
    }
}

/// Classify an import name such as `wasi:sockets/tcp@0.2.6`.
pub fn classify(import: &str) -> Capability {
    let name = import.split('@').next().unwrap_or(import);
    let package = name.split('/').next().unwrap_or(name);
    match package {
        "sluice:transform" => Capability::Contract,
        "wasi:io" | "wasi:cli" | "wasi:clocks" | "wasi:random" | "wasi:filesystem" => Capability::Inert,
        "wasi:sockets" | "wasi:http" => Capability::Network,
        _ => Capability::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_classified_by_package_whatever_their_version() {
        assert_eq!(classify("sluice:transform/log@0.1.0"), Capability::Contract);
        assert_eq!(classify("wasi:filesystem/preopens@0.2.6"), Capability::Inert);
        assert_eq!(classify("wasi:cli/environment@0.2.0"), Capability::Inert);
        assert_eq!(classify("wasi:sockets/tcp@0.2.6"), Capability::Network);
        assert_eq!(classify("wasi:http/outgoing-handler@0.2.0"), Capability::Network);
        assert_eq!(classify("acme:secrets/vault"), Capability::Unknown);
        assert!(!Capability::Network.allowed() && !Capability::Unknown.allowed());
    }
}
