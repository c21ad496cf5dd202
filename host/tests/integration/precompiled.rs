//! The stock components ship precompiled: the example's first run on an empty cache compiles
//! nothing (it only leaves each stock component's code in the cache, to be mapped from there),
//! and a flavour the build did not precompile for (a fuel budget) is compiled and cached as
//! before, with the same output.

use std::path::Path;

use serde_json::Value;

use crate::support::{copy_pipelines, duckdb, files_under, python, run, sluice};

const PRECOMPILED: &str = "Mapped the component's precompiled code.";
const COMPILING: &str = "Compiling component";

/// Runs the sensor example with an empty component cache; its stderr and the cache's files
/// of compiled components (not the stock components' code, `stock-*.cwasm`).
fn first_run(dir: &Path, pipeline: &Path) -> (String, Vec<std::path::PathBuf>) {
    let cache = dir.join("cache");
    let out = run(sluice()
        .env("SLUICE_CACHE_DIR", &cache)
        .env("SLUICE_LOG", "sluice=debug")
        .arg("run")
        .arg("--from-scratch")
        .arg(pipeline));
    assert!(out.status.success(), "the run failed");
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        files_under(&cache, ".cwasm")
            .into_iter()
            .filter(|f| !f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("stock-")))
            .collect(),
    )
}

/// What the run wrote, read by DuckDB (its float sum is rounded: DuckDB adds in whatever
/// order its threads finish).
fn summary(py: &Path, out: &Path) -> Vec<serde_json::Map<String, Value>> {
    let glob = out.join("**").join("*.parquet");
    duckdb(
        py,
        &format!(
            "select count(*) as n, round(sum(temperature), 6) as t, count(distinct device_id) as d, sum(is_anomaly::int) as a from read_parquet('{}')",
            glob.display()
        ),
    )
}

#[test]
fn the_first_run_on_an_empty_cache_compiles_no_stock_component() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipeline = copy_pipelines(tmp.path()).join("iot-sensors.toml");
    let (log, cached) = first_run(&tmp.path().join("plain"), &pipeline);
    for stock in ["map", "anomaly", "filter"] {
        assert!(
            log.lines()
                .any(|l| l.contains(PRECOMPILED) && l.contains(&format!("stock plugin `{stock}`"))),
            "{stock} did not load precompiled code:\n{log}"
        );
    }
    assert!(!log.contains(COMPILING), "a stock component was compiled:\n{log}");
    assert!(cached.is_empty(), "a compiled component was cached: {cached:?}");
    let code = files_under(&tmp.path().join("plain").join("cache"), ".cwasm");
    assert_eq!(code.len(), 3, "one code file per stock component: {code:?}");
    let plain = summary(&py, &tmp.path().join("out").join("iot-sensors"));
    assert!(plain[0]["n"].as_u64().is_some_and(|n| n > 0), "{plain:?}");

    // A fuel budget needs code with fuel metering, which the build did not make: wasmtime
    // refuses the precompiled code, and the component is compiled (and cached) instead.
    let text = std::fs::read_to_string(&pipeline).expect("pipeline");
    let fueled = text.replacen(
        "plugin = \"map\"\n",
        "plugin = \"map\"\nlimits = { fuel = 1_000_000_000_000 }\n",
        1,
    );
    assert_ne!(fueled, text, "the example's map stage moved");
    std::fs::write(&pipeline, fueled).expect("write");
    std::fs::remove_dir_all(tmp.path().join("out")).expect("clean");
    let (log, cached) = first_run(&tmp.path().join("fuel"), &pipeline);
    assert_eq!(
        log.matches(COMPILING).count(),
        1,
        "only the fuelled map compiles:\n{log}"
    );
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(summary(&py, &tmp.path().join("out").join("iot-sensors")), plain);
}
