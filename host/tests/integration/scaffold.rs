//! `sluice new transform NAME`, as a new user goes: the crate it writes builds for
//! `wasm32-wasip2` with cargo, validates, runs its sample pipeline (rows checked against the
//! sample file read by the test) and passes its own test cases; with `--lang js` the npm
//! project it writes builds with npm and does the same.

use std::path::Path;
use std::process::Command;

use crate::support::{npm, run, sluice, workspace};

#[test]
fn a_new_transform_builds_runs_its_pipeline_and_passes_its_tests() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = run(sluice().args(["new", "transform", "hot-rows", "--dir"]).arg(tmp.path()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = tmp.path().join("hot-rows");
    assert!(String::from_utf8_lossy(&out.stdout).contains("cargo build --release --target wasm32-wasip2"));

    // The README's build command. The test trades the release profile's optimisation, LTO
    // and single codegen unit (5 CPU minutes here) for an unoptimised build of the same code
    // (2), which is all six sample rows need; the target folder is kept across runs.
    // As a user would: `cargo` on the PATH (rustup's, which honours the crate's
    // rust-toolchain.toml), without what this test's own cargo passed down.
    let mut command = Command::new("cargo");
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("CARGO")
            || name.starts_with("RUSTC")
            || name.starts_with("RUSTUP_TOOLCHAIN")
            || name == "RUSTFLAGS"
            || name == "RUSTDOC"
        {
            command.env_remove(&var);
        }
    }
    let built = command
        .current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", workspace().join("target").join("scaffold-test"))
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "256")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .output()
        .expect("cargo");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let wasm = workspace().join("target/scaffold-test/wasm32-wasip2/release/hot_rows.wasm");
    let component = root.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&component).expect("dir");
    std::fs::copy(&wasm, component.join("hot_rows.wasm")).expect("the component");

    runs_its_sample_and_passes_its_tests(&root);
}

#[test]
fn a_new_javascript_transform_builds_with_npm_runs_its_pipeline_and_passes_its_tests() {
    if !crate::support::npm_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let out = run(sluice()
        .args(["new", "transform", "hot-rows", "--lang", "js", "--dir"])
        .arg(tmp.path()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = tmp.path().join("hot-rows");
    assert!(String::from_utf8_lossy(&out.stdout).contains("npm run build"));
    // The README's commands: the SDK's own packages first (a checkout has them after the
    // test command), then the project's, its unit tests on Node.js, and the component.
    crate::support::sdk_js_installed();
    npm(&root, &["install", "--no-audit", "--no-fund"]);
    npm(&root, &["test"]);
    npm(&root, &["run", "build"]);
    assert!(root.join("dist/hot-rows.wasm").is_file());
    runs_its_sample_and_passes_its_tests(&root);
}

/// `sluice validate`, `run` and `test` of a new transform's sample pipeline, its rows
/// checked against the sample file as this test reads it.
fn runs_its_sample_and_passes_its_tests(root: &Path) {
    let valid = run(sluice().current_dir(root).args(["validate", "pipeline.toml"]));
    assert!(valid.status.success(), "{}", String::from_utf8_lossy(&valid.stderr));

    // Rows on stdout: the sample's readings above 25, with their excess, in order.
    let sample = std::fs::read_to_string(root.join("sample.ndjson")).expect("sample");
    let mut expected = Vec::new();
    let mut missing = 0;
    let mut missing_lines = Vec::new();
    for (n, line) in sample.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("sample JSON");
        match v["temperature"].as_f64() {
            Some(t) if t > 25.0 => expected.push((v["device"].as_str().expect("device").to_owned(), t, t - 25.0)),
            Some(_) => {}
            None => {
                missing += 1;
                missing_lines.push(n + 1);
            }
        }
    }
    assert!(!expected.is_empty() && missing > 0, "the sample shows both cases");
    let ran = run(sluice().current_dir(root).args(["run", "pipeline.toml"]));
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let got: Vec<(String, f64, f64)> = String::from_utf8_lossy(&ran.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (
                v["device"].as_str().expect("device").to_owned(),
                v["temperature"].as_f64().expect("temperature"),
                v["excess"].as_f64().expect("excess"),
            )
        })
        .collect();
    assert_eq!(got, expected);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("\"stage\":\"hot-rows\"") && l.contains("no `temperature`"))
            .count(),
        missing,
        "each reading with no temperature is a dead letter on stderr: {stderr}"
    );
    // Row lineage: each dead letter names its own line of the sample, not the batch's range.
    for line in missing_lines {
        assert!(
            stderr.contains(&format!("\"line\":{line},")),
            "a dead letter names line {line}: {stderr}"
        );
    }

    let tested = run(sluice().current_dir(root).args(["test", "pipeline.toml"]));
    let said = String::from_utf8_lossy(&tested.stdout);
    assert!(tested.status.success(), "{said}");
    assert!(said.contains("1 test: 1 passed, 0 failed"), "{said}");
}
