//! Compiled components cached on disk, keyed by the component's digest and the engine's
//! compatibility hash (wasmtime version and every setting that changes code generation).
//!
//! Entries are written under a temporary name and renamed, and carry a SHA-256 trailer of
//! their content that is checked before use, so a torn or corrupted entry is recompiled
//! rather than loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::hex;

pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine: wasmtime::Engine,
    engine_key: String,
}

impl ComponentCache {
    pub(crate) fn new(dir: PathBuf, engine: &wasmtime::Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir,
            engine: engine.clone(),
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The folder entries are kept in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn get_or_compile(&self, digest: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        let path = self.dir.join(format!("{digest}-{}.cwasm", self.engine_key));
        if let Some(component) = self.load(&path) {
            tracing::debug!(path = %path.display(), "Loaded compiled component from cache.");
            return Ok(component);
        }
        tracing::info!(
            digest = &digest[..12],
            "Compiling component (first use; cached for later runs)."
        );
        let started = std::time::Instant::now();
        let component = Component::new(&self.engine, bytes)?;
        tracing::info!(
            digest = &digest[..12],
            ms = started.elapsed().as_millis() as u64,
            "Compiled component."
        );
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "Could not cache the compiled component.");
        }
        Ok(component)
    }

    fn load(&self, path: &PathBuf) -> Option<Component> {
        let data = std::fs::read(path).ok()?;
        let (body, trailer) = data.split_at_checked(data.len().checked_sub(32)?)?;
        if Sha256::digest(body).as_slice() != trailer {
            tracing::warn!(path = %path.display(), "Cached component is corrupt; recompiling.");
            return None;
        }
        // SAFETY: `body` was produced by `Component::serialize` on an engine with the same
        // compatibility hash (part of the file name) and is byte-for-byte what was written
        // (checked against the SHA-256 trailer above), which is the contract of `deserialize`.
        unsafe { Component::deserialize(&self.engine, body) }.ok()
    }

    fn store(&self, path: &PathBuf, component: &Component) -> Result<(), Box<dyn std::error::Error>> {
        std::fs::create_dir_all(&self.dir)?;
        let mut data = component.serialize()?;
        let trailer = Sha256::digest(&data);
        data.extend_from_slice(&trailer);
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", hex(&trailer[..8]), std::process::id()));
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
