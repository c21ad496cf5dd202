//! `sluice new transform NAME`: a ready crate for a transform of one's own — `Cargo.toml`
//! (a `cdylib`, `sluice-sdk` by path from the checkout this binary was built from), the
//! pinned toolchain with the `wasm32-wasip2` target, a documented `lib.rs` with native unit
//! tests (`sluice_sdk::testing::Harness`), a sample pipeline with test cases, sample data and
//! a README. The templates are `host/templates/transform/`, built into the binary.

use std::path::{Path, PathBuf};

/// Why the crate could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a crate's.
    #[error("`{0}` cannot name a transform crate: use lowercase letters, digits, `-` and `_`, starting with a letter")]
    Name(String),
    /// The folder is there already.
    #[error("{0} exists already: pick another name or --dir")]
    Exists(PathBuf),
    /// The SDK is not where it was when this binary was built.
    #[error("the Sluice SDK is not at {0}: pass --sdk with the path of a checkout's `sdk` folder")]
    NoSdk(PathBuf),
    /// Writing failed.
    #[error("writing {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// The files of a new transform crate: path inside the crate, template. `Cargo.lock` is the
/// Sluice workspace's, so the crate starts from the versions the SDK was built and tested
/// with (cargo drops what the crate does not use).
const FILES: [(&str, &str); 8] = [
    ("Cargo.lock", include_str!("../../Cargo.lock")),
    ("Cargo.toml", include_str!("../templates/transform/Cargo.toml.tmpl")),
    (
        "rust-toolchain.toml",
        include_str!("../templates/transform/rust-toolchain.toml.tmpl"),
    ),
    (".gitignore", include_str!("../templates/transform/gitignore.tmpl")),
    ("src/lib.rs", include_str!("../templates/transform/src/lib.rs.tmpl")),
    (
        "pipeline.toml",
        include_str!("../templates/transform/pipeline.toml.tmpl"),
    ),
    (
        "sample.ndjson",
        include_str!("../templates/transform/sample.ndjson.tmpl"),
    ),
    ("README.md", include_str!("../templates/transform/README.md.tmpl")),
];

/// The toolchain the SDK needs (the workspace's `rust-version`).
const TOOLCHAIN: &str = env!("CARGO_PKG_RUST_VERSION");

/// The SDK of the checkout this binary was built from.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("sdk")
}

/// Write a transform crate called `name` into `dir/name`, depending on the SDK at `sdk`;
/// returns the crate's folder.
pub fn new_transform(name: &str, dir: &Path, sdk: &Path) -> Result<PathBuf, ScaffoldError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(ScaffoldError::Name(name.to_owned()));
    }
    let sdk = sdk
        .canonicalize()
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| ScaffoldError::NoSdk(sdk.to_owned()))?;
    let root = dir.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    let crate_name = name.replace('-', "_");
    for (rel, template) in FILES {
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace("{{toolchain}}", toolchain())
            .replace("{{rust_version}}", TOOLCHAIN);
        let path = root.join(rel);
        let write = |error| ScaffoldError::Write {
            path: path.clone(),
            error,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write)?;
        }
        std::fs::write(&path, text).map_err(write)?;
    }
    Ok(root)
}

/// `1.97` as rustup wants it (`1.97.0`).
fn toolchain() -> &'static str {
    match TOOLCHAIN.matches('.').count() {
        1 => concat!(env!("CARGO_PKG_RUST_VERSION"), ".0"),
        _ => TOOLCHAIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_crate_has_every_file_filled_in() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = new_transform("hot-rows", dir.path(), &default_sdk()).expect("written");
        let cargo = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
        assert!(cargo.contains("name = \"hot_rows\""), "{cargo}");
        assert!(cargo.contains("crate-type = [\"cdylib\", \"rlib\"]"), "{cargo}");
        let sdk = default_sdk().canonicalize().expect("sdk");
        assert!(
            cargo.contains(&format!("sluice-sdk = {{ path = \"{}\" }}", sdk.display())),
            "{cargo}"
        );
        let pipeline = std::fs::read_to_string(root.join("pipeline.toml")).expect("pipeline");
        assert!(
            pipeline.contains("target/wasm32-wasip2/release/hot_rows.wasm"),
            "{pipeline}"
        );
        assert!(pipeline.contains("name = \"hot-rows\""), "{pipeline}");
        let toolchain = std::fs::read_to_string(root.join("rust-toolchain.toml")).expect("toolchain");
        assert!(toolchain.contains("channel = \"1.97.0\""), "{toolchain}");
        for (rel, _) in FILES {
            let text = std::fs::read_to_string(root.join(rel)).expect("file");
            assert!(!text.contains("{{"), "{rel} left a placeholder");
        }
        assert!(matches!(
            new_transform("hot-rows", dir.path(), &default_sdk()),
            Err(ScaffoldError::Exists(_))
        ));
        assert!(matches!(
            new_transform("Hot", dir.path(), &default_sdk()),
            Err(ScaffoldError::Name(_))
        ));
    }
}
