//! Transforms written in Python with `sdk-py`, built by componentize-py: the example
//! `identity` and `filter` (`sdk-py/examples`) run on the example data; DuckDB reads their
//! output against the input as the stock pipeline writes it, and against the stock Rust
//! `filter`. A default componentize-py build, which imports `wasi:sockets`, is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{duckdb, python, run, sluice, workspace};

/// Build `app` from `sdk-py/examples` into `out` with componentize-py.
fn componentize(python: &Path, app: &str, out: &Path, stub_wasi: bool) -> PathBuf {
    let tool = python.with_file_name("componentize-py");
    assert!(
        tool.is_file(),
        "no {} (scripts/test.sh installs componentize-py into the venv)",
        tool.display()
    );
    // The one pure-Python dependency, on its own so that nothing else of the venv is bundled.
    let deps = out.join("deps");
    if !deps.join("flatbuffers").is_dir() {
        let found = Command::new(python)
            .args([
                "-c",
                "import flatbuffers, os; print(os.path.dirname(flatbuffers.__file__))",
            ])
            .output()
            .expect("python");
        assert!(found.status.success(), "flatbuffers is not installed in the venv");
        let from = PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
        std::fs::create_dir_all(deps.join("flatbuffers")).expect("deps");
        for entry in std::fs::read_dir(&from).expect("flatbuffers") {
            let entry = entry.expect("entry");
            if entry.path().extension().is_some_and(|e| e == "py") {
                std::fs::copy(entry.path(), deps.join("flatbuffers").join(entry.file_name())).expect("copy");
            }
        }
    }
    let wasm = out.join(format!("{app}{}.wasm", if stub_wasi { "" } else { "-wasi" }));
    let sdk = workspace().join("sdk-py");
    let mut cmd = Command::new(&tool);
    cmd.arg("-d")
        .arg(workspace().join("wit"))
        .args(["-w", "transformer", "componentize", app, "-p"])
        .arg(sdk.join("examples"))
        .arg("-p")
        .arg(&sdk)
        .arg("-p")
        .arg(&deps)
        .arg("-o")
        .arg(&wasm)
        .env_remove("VIRTUAL_ENV");
    if stub_wasi {
        cmd.arg("--stub-wasi");
    }
    let built = cmd.output().expect("componentize-py");
    assert!(
        built.status.success(),
        "componentize-py {app}: {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    wasm
}

fn pipeline(dir: &Path, name: &str, transform: &str) -> PathBuf {
    let text = format!(
        r#"[pipeline]
name = "{name}"
[source]
type = "file"
path = "{data}"
batch_rows = 1000
[source.schema]
client_id = {{ type = "string", nullable = false }}
timestamp = "string"
humidity = "double"
temperature = "double"
count = "long"
{transform}
[sink]
type = "parquet"
path = "{name}-out"
"#,
        data = workspace().join("pipelines/data/sensors-*.ndjson").display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("pipeline");
    path
}

#[test]
fn python_identity_and_filter_components_write_what_the_stock_pipeline_does() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let identity = componentize(&python, "identity", tmp.path(), true);
    let filter = componentize(&python, "filter", tmp.path(), true);
    let runs = [
        ("none", String::new()),
        (
            "identity",
            format!("[[transform]]\nname = \"same\"\ncomponent = \"{}\"", identity.display()),
        ),
        (
            "rust",
            "[[transform]]\nname = \"warm\"\nplugin = \"filter\"\nconfig.predicate = \"temperature > 25\"".to_owned(),
        ),
        (
            "python",
            format!(
                "[[transform]]\nname = \"warm\"\ncomponent = \"{}\"\nconfig = {{ column = \"temperature\", op = \">\", value = 25 }}",
                filter.display()
            ),
        ),
    ];
    for (name, transform) in &runs {
        let p = pipeline(tmp.path(), name, transform);
        let out = run(sluice().arg("run").arg(&p));
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
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
    let same = |a: &str, b: &str| {
        let (x, y) = (rows(a), rows(b));
        assert!(!x.is_empty(), "{a} wrote rows");
        if x != y {
            let first = x
                .iter()
                .zip(&y)
                .position(|(l, r)| l != r)
                .unwrap_or(x.len().min(y.len()));
            panic!(
                "{a}: {} rows, {b}: {}; first difference at row {first}: {:?} against {:?}",
                x.len(),
                y.len(),
                x.get(first),
                y.get(first)
            );
        }
    };
    same("identity", "none");
    same("python", "rust");
    assert!(rows("python").len() < rows("none").len(), "the filter drops rows");

    // The default build imports wasi:sockets: refused, naming it.
    let wasi = componentize(&python, "identity", tmp.path(), false);
    let p = pipeline(
        tmp.path(),
        "wasi",
        &format!("[[transform]]\nname = \"same\"\ncomponent = \"{}\"", wasi.display()),
    );
    let out = run(sluice().arg("validate").arg(&p));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("wasi:sockets") && err.contains("wasi.toml:"), "{err}");
}
