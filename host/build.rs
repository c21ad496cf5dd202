//! Builds the stock plugins (`plugins/*`) as `wasm32-wasip2` components and embeds them in
//! the `sluice` binary, so `plugin = "map"` works from any folder with nothing else
//! installed. A nested cargo with its own target folder avoids the outer build's lock.
//!
//! Each stock component is also compiled to native code here, with the engine configuration
//! the binary uses (`src/engine/config.rs`, included below), and that code is embedded too:
//! the first run of a pipeline starts at once instead of compiling for seconds per component.

#[path = "src/engine/config.rs"]
mod engine_config;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const STOCK: &[&str] = &["map", "filter", "window", "anomaly"];
/// Test-only components (`host/tests/plugins/*`), built beside the stock ones but not embedded.
const TEST_ONLY: &[&str] = &[
    "sluice-test-faulty",
    "sluice-test-netprobe",
    "sluice-test-counter",
    "sluice-test-hostile",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("host/ lives in the workspace root").to_owned();
    for dir in ["wit", "sdk", "plugins", "host/tests/plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("src/engine/config.rs").display()
    );
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("plugins");

    // `SLUICE_COMPONENT_TOOLCHAIN` builds the components with that rustup toolchain rather
    // than the one building the host (`scripts/fuzz.sh` builds the host on nightly, which
    // may have no wasm32-wasip2 target).
    println!("cargo:rerun-if-env-changed=SLUICE_COMPONENT_TOOLCHAIN");
    let mut cmd = match std::env::var("SLUICE_COMPONENT_TOOLCHAIN") {
        Ok(toolchain) if !toolchain.is_empty() => {
            let mut c = Command::new("rustup");
            c.args(["run", &toolchain, "cargo"]);
            for var in ["RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "CARGO"] {
                c.env_remove(var);
            }
            c
        }
        _ => Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())),
    };
    cmd.current_dir(&root)
        .args([
            "build",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "plugin",
            "--target-dir",
        ])
        .arg(&target_dir);
    for name in STOCK {
        cmd.args(["-p", &format!("sluice-plugin-{name}")]);
    }
    for package in TEST_ONLY {
        cmd.args(["-p", package]);
    }
    // What the outer build set for the host must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    // Components are the same bytes (and digest) whatever folder the workspace and the cargo
    // registry are in: source paths embedded in panic locations are remapped.
    let mut rustflags = vec![format!("--remap-path-prefix={}=/sluice", root.display())];
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        rustflags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\u{1f}"));
    let status = cmd.status().expect("running cargo to build the stock plugins");
    assert!(
        status.success(),
        "building the stock plugins for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let precompiler = Precompiler::new(&root, &target_dir);
    let mut code = String::from("/// The stock plugins.\npub const STOCK: &[Stock] = &[\n");
    for name in STOCK {
        let wasm = artifact(&target_dir, name);
        let bytes = std::fs::read(&wasm).expect("reading a stock component");
        // The component's identity, hashed here rather than at every start (7 MB each).
        let digest = hex(&Sha256::digest(&bytes));
        let precompiled = match &precompiler {
            // SAFETY (of the generated `Precompiled::new`): the file is wasmtime's own
            // precompiled output, written just now by `Precompiler::compile`.
            Some(p) => {
                let path = p.compile(name, &bytes, &digest);
                let code = std::fs::read(&path).expect("reading a precompiled plugin");
                format!(
                    "Some(unsafe {{ crate::engine::Precompiled::new({name:?}, include_bytes!({:?}), {:?}) }})",
                    path.display().to_string(),
                    hex(&Sha256::digest(code))
                )
            }
            None => "None".to_owned(),
        };
        code.push_str(&format!(
            "    Stock {{ name: {name:?}, component: include_bytes!({:?}), digest: {digest:?}, precompiled: {precompiled} }},\n",
            wasm.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("stock.rs"), code).expect("writing stock.rs");
    // Where tests find the test-only components.
    println!(
        "cargo:rustc-env=SLUICE_PLUGIN_DIR={}",
        target_dir.join("wasm32-wasip2").join("plugin").display()
    );
}

fn artifact(target_dir: &Path, name: &str) -> PathBuf {
    let path = target_dir
        .join("wasm32-wasip2")
        .join("plugin")
        .join(format!("sluice_plugin_{name}.wasm"));
    assert!(path.is_file(), "expected the stock plugin at {}", path.display());
    path
}

/// Compiles stock components to native code with the binary's own engine configuration.
struct Precompiler {
    engine: wasmtime::Engine,
    /// Where compiled code is kept between builds, keyed by the component's digest, the
    /// engine configuration and the lock file (the wasmtime version): a rebuild recompiles
    /// only a component that changed. (Were a kept file stale anyway, the binary's wasmtime
    /// would refuse it and compile the component at first use.)
    dir: PathBuf,
    engine_key: String,
}

impl Precompiler {
    /// `None` when cross-compiling: code for the build machine would not run on the target
    /// (the binary then compiles each stock component at its first use, and caches it).
    fn new(root: &Path, target_dir: &Path) -> Option<Self> {
        if std::env::var("TARGET").ok() != std::env::var("HOST").ok() {
            println!("cargo:warning=cross-compiling: stock components are compiled at first use, not now");
            return None;
        }
        // The default flavour: deadlines enforced, no fuel (see `Flavour::new`).
        let config = engine_config::wasmtime_config(true, false);
        let engine = wasmtime::Engine::new(&config).expect("configuring wasmtime to precompile the stock plugins");
        let mut key = Sha256::new();
        key.update(include_str!("src/engine/config.rs"));
        key.update(std::fs::read(root.join("Cargo.lock")).expect("reading Cargo.lock"));
        Some(Precompiler {
            engine,
            dir: target_dir.join("precompiled"),
            engine_key: hex(&key.finalize()[..8]),
        })
    }

    /// The path of `name`'s precompiled code (the component `bytes`, of SHA-256 `digest`),
    /// compiling it unless an earlier build did.
    fn compile(&self, name: &str, bytes: &[u8], digest: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}-{digest}-{}.cwasm", self.engine_key));
        if path.is_file() {
            return path;
        }
        let code = self
            .engine
            .precompile_component(bytes)
            .unwrap_or_else(|e| panic!("precompiling stock plugin {name}: {e:#}"));
        std::fs::create_dir_all(&self.dir).expect("creating the precompiled plugin folder");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, code).expect("writing a precompiled plugin");
        std::fs::rename(&tmp, &path).expect("renaming a precompiled plugin");
        path
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
