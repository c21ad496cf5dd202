//! Native code built with the binary: the stock components, precompiled by `build.rs`.
//!
//! Loading code from bytes makes wasmtime copy it into fresh memory: 20 MB per stock
//! component, about 25 ms of every start spent faulting in and filling pages. So the code is
//! also kept as a file in the component cache folder, named by the component and its code's
//! digest, which wasmtime maps instead: pages come from the page cache, and only those used.
//! The file is compared with the embedded bytes before each use (through a read-only
//! mapping: a few milliseconds), rewritten when it differs, and any failure falls back to loading the
//! bytes. Writing a component's code removes that component's files of other builds, so the
//! folder holds one file per stock component, not one per build ever run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};
use wasmtime::component::Component;

use super::one_line;

/// Native code for a component, produced at build time by `build.rs` with this binary's
/// wasmtime and engine configuration, with the SHA-256 of that code.
#[derive(Debug, Clone, Copy)]
pub struct Precompiled {
    name: &'static str,
    code: &'static [u8],
    digest: &'static str,
}

impl Precompiled {
    /// # Safety
    /// `code` must be the output of wasmtime's `Engine::precompile_component`, unaltered:
    /// wasmtime checks that it matches the engine, but trusts the code itself. `digest` is
    /// its SHA-256 in hex; `name` the stock component's (letters and digits).
    pub const unsafe fn new(name: &'static str, code: &'static [u8], digest: &'static str) -> Self {
        Precompiled { name, code, digest }
    }
}

/// The precompiled code, if wasmtime finds it built for `engine`; `None` means compile.
/// With a cache folder, the code is mapped from its file there (see the module's doc).
pub(crate) fn load(
    engine: &wasmtime::Engine,
    name: &str,
    precompiled: Option<Precompiled>,
    cache_dir: Option<&Path>,
) -> Option<Component> {
    let precompiled = precompiled?;
    if let Some(dir) = cache_dir {
        match mapped(engine, dir, precompiled) {
            Ok(component) => {
                tracing::debug!(component = name, "Mapped the component's precompiled code.");
                return Some(component);
            }
            Err(reason) => {
                tracing::debug!(component = name, %reason, "Precompiled code not mapped; loading it from the binary.");
            }
        }
    }
    // SAFETY: `Precompiled::new`'s contract: the bytes are wasmtime's own precompiled output,
    // embedded in this binary at build time. wasmtime checks the rest (its version, the
    // target, every code-generation setting and the CPU's features).
    match unsafe { Component::deserialize(engine, precompiled.code) } {
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

/// The code mapped from its file in `dir`, written first unless it holds exactly the code.
fn mapped(engine: &wasmtime::Engine, dir: &Path, precompiled: Precompiled) -> Result<Component, String> {
    let path = file_of(dir, precompiled);
    if !holds(&path, precompiled.code) {
        write(dir, &path, precompiled.code).map_err(|e| format!("writing {}: {e}", path.display()))?;
        remove_other_builds(dir, precompiled);
    }
    // SAFETY: the file holds byte for byte the embedded code (compared just above, or just
    // written under a temporary name and renamed into place), which is `Precompiled::new`'s
    // contract; files are only ever replaced by a rename, never changed in place, so the
    // mapping keeps those bytes.
    unsafe { Component::deserialize_file(engine, &path) }.map_err(|e| one_line(&e))
}

/// Where `precompiled` is kept in `dir`.
fn file_of(dir: &Path, precompiled: Precompiled) -> PathBuf {
    dir.join(format!("stock-{}-{}.cwasm", precompiled.name, precompiled.digest))
}

/// Remove the files of `precompiled`'s component that other builds wrote in `dir` (a run of
/// such a build maps its own file, which stays valid once unlinked, and writes it again).
fn remove_other_builds(dir: &Path, precompiled: Precompiled) {
    let ours = file_of(dir, precompiled);
    let prefix = format!("stock-{}-", precompiled.name);
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let theirs = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(&prefix)?.strip_suffix(".cwasm"))
            // What follows the prefix is a digest, not the rest of another component's name
            // that begins with this one's and a dash.
            .is_some_and(|digest| {
                digest.len() == precompiled.digest.len() && digest.bytes().all(|b| b.is_ascii_hexdigit())
            });
        if theirs && path != ours {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether the file at `path` holds exactly `code`. Compared through a read-only mapping
/// of the file: reading the three stock files (60 MB) copied every page and was a quarter
/// of a small run's start (`perf`: 30 ms of a 130 ms run), where the comparison itself
/// takes a few milliseconds.
fn holds(path: &Path, code: &[u8]) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let len = |file: &std::fs::File| file.metadata().map(|m| m.len()).ok();
    if len(&file) != Some(code.len() as u64) {
        return false;
    }
    if code.is_empty() {
        return true;
    }
    // SAFETY: a private read-only mapping of `code.len()` bytes of a file of that length,
    // read only inside this function and unmapped before it returns. The files are only
    // ever replaced by a rename, never changed in place (see `write`), so the bytes stay
    // put; someone truncating one by hand while it is compared would get a SIGBUS, as while
    // wasmtime runs code mapped from it.
    unsafe {
        let Ok(at) = mmap(
            std::ptr::null_mut(),
            code.len(),
            ProtFlags::READ,
            MapFlags::PRIVATE,
            &file,
            0,
        ) else {
            return false;
        };
        let same = std::slice::from_raw_parts(at.cast::<u8>(), code.len()) == code;
        let _ = munmap(at, code.len());
        // Nothing past the end (the file may have grown since its length was read).
        same && len(&file) == Some(code.len() as u64)
    }
}

/// Write `code` to `path` under a temporary name first, so no reader sees a part of it.
/// The name is this call's own (process and call number): two writers never share a file.
fn write(dir: &Path, path: &Path, code: &[u8]) -> std::io::Result<()> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("stock"),
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, code)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, EngineSettings};

    #[test]
    fn only_a_file_of_exactly_the_code_holds_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let code: Vec<u8> = (0..3_000_000u32).map(|n| (n * 7 % 251) as u8).collect();
        let path = dir.path().join("stock-x.cwasm");
        assert!(!holds(&path, &code), "no file");
        write(dir.path(), &path, &code).expect("write");
        assert!(holds(&path, &code));
        let mut other = code.clone();
        other[2_500_000] ^= 1;
        assert!(!holds(&path, &other), "a byte differs far into the file");
        assert!(!holds(&path, &code[..code.len() - 1]), "the file is longer");
        let mut longer = code.clone();
        longer.push(0);
        assert!(!holds(&path, &longer), "the file is shorter");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            1,
            "no temporary file left"
        );
    }

    /// Threads writing the same code at once each write a file of their own: the one left in
    /// place holds the code.
    #[test]
    fn writers_at_the_same_time_never_share_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let code: Vec<u8> = (0..4_000_000u32).map(|n| (n % 253) as u8).collect();
        let path = dir.path().join("stock-y.cwasm");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..3 {
                        write(dir.path(), &path, &code).expect("write");
                    }
                });
            }
        });
        assert!(holds(&path, &code));
    }

    /// Writing a component's code removes the files other builds wrote for it, and no
    /// other component's.
    #[test]
    fn a_components_files_of_other_builds_are_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let digest = |c: char| c.to_string().repeat(64);
        let (a, b) = (digest('a'), digest('b'));
        let old = dir.path().join(format!("stock-map-{b}.cwasm"));
        let others = [
            dir.path().join(format!("stock-map-extra-{b}.cwasm")),
            dir.path().join(format!("stock-filter-{b}.cwasm")),
            dir.path().join(format!("{b}-0123456789abcdef.cwasm")),
        ];
        for path in others.iter().chain([&old]) {
            std::fs::write(path, b"x").expect("write");
        }
        let code: &'static [u8] = b"code";
        let digest_a: &'static str = Box::leak(a.into_boxed_str());
        // SAFETY: only written and compared here, never loaded.
        let precompiled = unsafe { Precompiled::new("map", code, digest_a) };
        let path = file_of(dir.path(), precompiled);
        write(dir.path(), &path, code).expect("write");
        remove_other_builds(dir.path(), precompiled);
        assert!(holds(&path, code));
        assert!(!old.exists(), "the other build's file of map is gone");
        assert!(others.iter().all(|p| p.exists()), "other components' files stay");
    }

    /// Every stock component is mapped from its file in the cache, rewritten when damaged,
    /// and instantiates.
    #[test]
    fn stock_code_is_mapped_from_the_cache_and_a_damaged_file_is_rewritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = |cache_dir: Option<PathBuf>| {
            Engine::new(EngineSettings {
                cache_dir,
                enforce_limits: true,
            })
            .expect("engine")
        };
        let (cached, plain) = (engine(Some(dir.path().to_owned())), engine(None));
        for stock in crate::stock::STOCK {
            let Some(precompiled) = stock.precompiled else {
                continue; // cross-compiled: nothing to map
            };
            let path = file_of(dir.path(), precompiled);
            let load = |engine: &Engine| {
                engine
                    .load_prebuilt(stock.name, stock.component, stock.digest, stock.precompiled, false)
                    .expect("load")
            };
            load(&cached);
            assert!(holds(&path, precompiled.code), "{} written to the cache", stock.name);
            let mut damaged = std::fs::read(&path).expect("read");
            let middle = damaged.len() / 2;
            damaged[middle] ^= 0xff;
            std::fs::write(&path, &damaged).expect("damage");
            if let Err(reason) = mapped(&cached.plain.engine, dir.path(), precompiled) {
                panic!("{} not mapped: {reason}", stock.name);
            }
            assert!(holds(&path, precompiled.code), "{} rewritten", stock.name);
            let (mapped, loaded) = (load(&cached), load(&plain));
            assert_eq!(mapped.imports(), loaded.imports(), "{}", stock.name);
            mapped
                .instantiate("test", &crate::engine::Limits::default())
                .unwrap_or_else(|e| panic!("{} does not instantiate: {e}", stock.name));
        }
    }
}
