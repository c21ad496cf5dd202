//! A transform written in JavaScript with `sdk-js`: the example port of `filter`
//! (`sdk-js/examples/filter`) is built with npm (esbuild + componentize-js, as its
//! `npm run build` does for a user), then run on the example data next to the stock Rust
//! `filter` with the same predicates. DuckDB reads both outputs: they must hold the same rows.

use std::path::{Path, PathBuf};

use crate::support::{duckdb, npm, npm_available, python, run, sluice, workspace};

/// The example filter component, built with npm; `None` (a skip) only outside the test
/// command when npm is missing.
fn build() -> Option<PathBuf> {
    if !npm_available() {
        return None;
    }
    let sdk = workspace().join("sdk-js");
    let example = sdk.join("examples/filter");
    crate::support::sdk_js_installed();
    npm(&example, &["install", "--no-audit", "--no-fund"]);
    npm(&example, &["run", "build"]);
    let wasm = example.join("dist/filter.wasm");
    assert!(wasm.is_file(), "npm run build wrote no {}", wasm.display());
    Some(wasm)
}

/// Sensor readings with nulls in every nullable column, so three-valued logic shows.
fn readings(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for i in 0..3000u64 {
        let device = format!("raspberrypi-{}", i % 13);
        let humidity = if i % 7 == 3 {
            "null".to_owned()
        } else {
            format!("{:.2}", 30.0 + (i * 37 % 300) as f64 / 10.0)
        };
        let temperature = if i % 11 == 5 {
            "null".to_owned()
        } else {
            format!("{:.2}", 15.0 + (i * 53 % 200) as f64 / 10.0)
        };
        let count = if i % 17 == 0 {
            "null".to_owned()
        } else {
            (i % 40).to_string()
        };
        let minute = 40 + i % 3;
        text.push_str(&format!(
            "{{\"client_id\": \"{device}\", \"timestamp\": \"2020-04-16 10:{minute}:00\", \"humidity\": {humidity}, \"temperature\": {temperature}, \"count\": {count}}}\n"
        ));
    }
    let path = dir.join("readings.ndjson");
    std::fs::write(&path, text).expect("readings");
    path
}

fn pipeline(dir: &Path, data: &Path, name: &str, transform: &str, predicate: &str) -> PathBuf {
    let text = format!(
        r#"[pipeline]
name = "{name}"
[source]
type = "file"
path = "{data}"
batch_rows = 700
[source.schema]
client_id = {{ type = "string", nullable = false }}
timestamp = "string"
humidity = "double"
temperature = "double"
count = "long"
[[transform]]
name = "keep"
{transform}
config.predicate = "{predicate}"
[sink]
type = "parquet"
path = "{name}-out"
"#,
        data = data.display(),
        predicate = predicate.replace('\\', "\\\\").replace('"', "\\\""),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("pipeline");
    path
}

#[test]
fn the_javascript_filter_writes_the_same_rows_as_the_rust_one() {
    let Some(python) = python() else { return };
    let Some(wasm) = build() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let example = workspace().join("pipelines/data/sensors-*.ndjson");
    let generated = readings(tmp.path());
    let predicates = [
        "temperature > 25",
        "temperature > 25 and (client_id starts_with 'raspberrypi-1' or humidity is null) and count != 3",
        "not (humidity <= 40.5) or client_id = 'raspberrypi-7'",
        "client_id contains 'pi-2' and count >= 10",
        "humidity is null or timestamp < '2020-04-16 10:41:00'",
        "not (temperature > 24 and count < 20)",
        "not (humidity < 45 or count = 7)",
    ];
    for (i, predicate) in predicates.iter().enumerate() {
        // The example data first, then readings with nulls.
        let data = if i == 0 { &example } else { &generated };
        let rust = pipeline(tmp.path(), data, &format!("rust{i}"), "plugin = \"filter\"", predicate);
        let js = pipeline(
            tmp.path(),
            data,
            &format!("js{i}"),
            &format!("component = \"{}\"", wasm.display()),
            predicate,
        );
        for p in [&rust, &js] {
            let out = run(sluice().arg("run").arg(p));
            assert!(
                out.status.success(),
                "{predicate}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let rows = |name: &str| {
            duckdb(
                &python,
                &format!(
                    "select * from read_parquet('{}/{name}-out/**/*.parquet') order by all",
                    tmp.path().display()
                ),
            )
        };
        let (want, got) = (rows(&format!("rust{i}")), rows(&format!("js{i}")));
        assert!(
            !want.is_empty() && want.len() < 3000,
            "{predicate}: a predicate that tells rows apart"
        );
        if got != want {
            let first = want
                .iter()
                .zip(&got)
                .position(|(w, g)| w != g)
                .unwrap_or(want.len().min(got.len()));
            panic!(
                "{predicate}: {} rows from JavaScript, {} from Rust; first difference at row {first}: {:?} against {:?}",
                got.len(),
                want.len(),
                got.get(first),
                want.get(first)
            );
        }
    }
    // A config error inside the component names the pipeline file's line and key.
    let bad = pipeline(
        tmp.path(),
        &generated,
        "bad",
        &format!("component = \"{}\"", wasm.display()),
        "temprature > 25",
    );
    let out = run(sluice().arg("validate").arg(&bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.toml:16:")
            && err.contains("`transform[0].config.predicate`")
            && err.contains("no column `temprature`"),
        "{err}"
    );
}
