//! `sluice new transform NAME`: a ready crate for a transform of one's own — `Cargo.toml`
//! (a `cdylib`, `sluice-sdk` by path from the checkout this binary was built from), the
//! pinned toolchain with the `wasm32-wasip2` target, a documented `lib.rs` with native unit
//! tests (`sluice_sdk::testing::Harness`), a sample pipeline with test cases, sample data and
//! a README. The templates are `host/templates/transform/`, built into the binary.
//!
//! `--lang js` writes an npm project instead (`host/templates/transform-js/`): the
//! JavaScript SDK (`sdk-js`) by path, esbuild and componentize-js, with `npm run build`
//! making the component and `npm test` running unit tests on Node.js.

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
    #[error(
        "the Sluice SDK is not at {0}: pass --sdk with the path of a checkout's `sdk` folder (`sdk-js` for --lang js)"
    )]
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

/// The files of a new JavaScript transform project.
const JS_FILES: [(&str, &str); 7] = [
    (
        "package.json",
        include_str!("../templates/transform-js/package.json.tmpl"),
    ),
    (".gitignore", include_str!("../templates/transform-js/gitignore.tmpl")),
    (
        "src/transform.js",
        include_str!("../templates/transform-js/src/transform.js.tmpl"),
    ),
    (
        "test/transform.test.js",
        include_str!("../templates/transform-js/test/transform.test.js.tmpl"),
    ),
    (
        "pipeline.toml",
        include_str!("../templates/transform-js/pipeline.toml.tmpl"),
    ),
    (
        "sample.ndjson",
        include_str!("../templates/transform-js/sample.ndjson.tmpl"),
    ),
    ("README.md", include_str!("../templates/transform-js/README.md.tmpl")),
];

/// The language a new transform is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate (`sluice-sdk`).
    #[default]
    Rust,
    /// An npm project (`sdk-js`, componentize-js).
    Js,
}

/// The toolchain the SDK needs (the workspace's `rust-version`).
const TOOLCHAIN: &str = env!("CARGO_PKG_RUST_VERSION");

/// The SDK for `lang` of the checkout this binary was built from.
pub fn default_sdk(lang: Lang) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match lang {
        Lang::Rust => root.join("sdk"),
        Lang::Js => root.join("sdk-js"),
    }
}

/// The WIT contract of the checkout this binary was built from (componentize-js reads it).
fn wit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("wit")
}

/// Write a JavaScript transform project called `name` into `dir/name`, depending on the
/// JavaScript SDK at `sdk`; returns the project's folder.
pub fn new_js_transform(name: &str, dir: &Path, sdk: &Path) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
    let sdk = sdk
        .canonicalize()
        .ok()
        .filter(|p| p.join("package.json").is_file())
        .ok_or_else(|| ScaffoldError::NoSdk(sdk.to_owned()))?;
    let wit = wit().canonicalize().unwrap_or_else(|_| wit());
    let root = dir.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    for (rel, template) in JS_FILES {
        let text = template
            .replace("{{name}}", name)
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace("{{wit}}", &wit.display().to_string());
        write(&root.join(rel), &text)?;
    }
    Ok(root)
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ScaffoldError::Name(name.to_owned()))
    }
}

fn write(path: &Path, text: &str) -> Result<(), ScaffoldError> {
    let fail = |error| ScaffoldError::Write {
        path: path.to_owned(),
        error,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::write(path, text).map_err(fail)
}

/// Write a transform crate called `name` into `dir/name`, depending on the SDK at `sdk`;
/// returns the crate's folder.
pub fn new_transform(name: &str, dir: &Path, sdk: &Path) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
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
        write(&root.join(rel), &text)?;
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
        let root = new_transform("hot-rows", dir.path(), &default_sdk(Lang::Rust)).expect("written");
        let cargo = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
        assert!(cargo.contains("name = \"hot_rows\""), "{cargo}");
        assert!(cargo.contains("crate-type = [\"cdylib\", \"rlib\"]"), "{cargo}");
        let sdk = default_sdk(Lang::Rust).canonicalize().expect("sdk");
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
            new_transform("hot-rows", dir.path(), &default_sdk(Lang::Rust)),
            Err(ScaffoldError::Exists(_))
        ));
        assert!(matches!(
            new_transform("Hot", dir.path(), &default_sdk(Lang::Rust)),
            Err(ScaffoldError::Name(_))
        ));
    }

    #[test]
    fn a_new_javascript_project_has_every_file_filled_in() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = new_js_transform("hot-rows", dir.path(), &default_sdk(Lang::Js)).expect("written");
        let package: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("package.json")).expect("package.json"))
                .expect("package.json is JSON");
        let sdk = default_sdk(Lang::Js).canonicalize().expect("sdk-js");
        assert_eq!(package["dependencies"]["sluice-sdk"], format!("file:{}", sdk.display()));
        let build = package["scripts"]["build"].as_str().expect("build script");
        assert!(
            build.contains("--out dist/hot-rows.wasm") && build.contains("/wit "),
            "{build}"
        );
        let pipeline = std::fs::read_to_string(root.join("pipeline.toml")).expect("pipeline");
        assert!(pipeline.contains("component = \"dist/hot-rows.wasm\""), "{pipeline}");
        for (rel, _) in JS_FILES {
            let text = std::fs::read_to_string(root.join(rel)).expect("file");
            assert!(!text.contains("{{"), "{rel} left a placeholder");
        }
        assert!(matches!(
            new_js_transform("x", dir.path(), &default_sdk(Lang::Rust)),
            Err(ScaffoldError::NoSdk(_))
        ));
    }
}
