//! The console sink prints exactly the rows a pipeline makes (and its dead letters on stderr)
//! and leaves nothing on disk; `sluice run --dry-run` writes and commits nothing, and says
//! how many rows a real run then writes (counted by DuckDB).

use std::path::Path;

use crate::support::{copy_pipelines, duckdb, files_under, python, run, sluice};

fn pipeline(dir: &Path, sink: &str) -> std::path::PathBuf {
    let path = dir.join("p.toml");
    std::fs::write(
        &path,
        format!(
            r#"[source]
type = "file"
path = "in.ndjson"
batch_rows = 64
[source.schema]
device = {{ type = "string", nullable = false }}
temperature = "double"
[[transform]]
name = "warm"
plugin = "filter"
config.predicate = "temperature > 25"
{sink}"#
        ),
    )
    .expect("pipeline");
    path
}

/// 500 lines: every 50th broken; returns (the rows a filter on > 25 keeps, the broken count).
fn input(dir: &Path) -> (Vec<(String, f64)>, usize) {
    let (mut warm, mut bad, mut text) = (Vec::new(), 0, String::new());
    for i in 0..500 {
        if i % 50 == 3 {
            text.push_str("{\"device\": \"d\", \"temperature\": \n");
            bad += 1;
            continue;
        }
        let t = (i % 40) as f64 + 0.5;
        if t > 25.0 {
            warm.push((format!("d{i}"), t));
        }
        text.push_str(&format!("{{\"device\":\"d{i}\",\"temperature\":{t}}}\n"));
    }
    std::fs::write(dir.join("in.ndjson"), text).expect("input");
    (warm, bad)
}

#[test]
fn a_console_sink_prints_every_row_and_dead_letter_and_writes_no_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (warm, bad) = input(tmp.path());
    let p = pipeline(tmp.path(), "[sink]\ntype = \"console\"\n");
    let out = run(sluice().current_dir(tmp.path()).arg("run").arg(&p));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<(String, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (
                v["device"].as_str().expect("device").to_owned(),
                v["temperature"].as_f64().expect("temperature"),
            )
        })
        .collect();
    assert_eq!(rows, warm, "stdout holds exactly the rows, in order, and nothing else");
    let dead: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a dead letter"))
        .collect();
    assert_eq!(dead.len(), bad, "{stderr}");
    assert!(
        dead.iter()
            .all(|d| d["stage"] == "decode" && d["source"]["line"].is_u64())
    );
    assert!(
        stderr.contains(&format!("written       {} rows to stdout", warm.len())),
        "{stderr}"
    );
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["in.ndjson", "p.toml"], "nothing written to disk");

    // Tables, on request.
    let p = pipeline(tmp.path(), "[sink]\ntype = \"console\"\nformat = \"table\"\n");
    let out = run(sluice().current_dir(tmp.path()).arg("run").arg(&p));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| device") && stdout.contains("| temperature |"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l
                .strip_prefix("| d")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit())))
            .count(),
        warm.len(),
        "{stdout}"
    );
}

#[test]
fn a_dry_run_commits_nothing_and_says_what_a_real_run_writes() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipelines = copy_pipelines(tmp.path());
    let p = pipelines.join("iot-sensors.toml");
    let out_dir = tmp.path().join("out");
    let dry = run(sluice().args(["run", "--dry-run"]).arg(&p));
    let said = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(dry.status.success(), "{said}{}", String::from_utf8_lossy(&dry.stderr));
    assert!(
        !out_dir.exists(),
        "a dry run writes nothing: {:?}",
        files_under(&out_dir, "")
    );
    let would: u64 = said
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("would write"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `would write` line: {said}"));
    let dead_said = String::from_utf8_lossy(&dry.stderr)
        .lines()
        .filter(|l| l.starts_with("{\"reason\""))
        .count();

    // A real run afterwards starts from the beginning (the dry run left no checkpoint).
    let real = run(sluice().arg("run").arg(&p));
    assert!(real.status.success());
    assert!(!String::from_utf8_lossy(&real.stdout).contains("resumed"));
    let glob = out_dir.join("iot-sensors").join("**").join("*.parquet");
    let rows = duckdb(
        &py,
        &format!("select count(*) as n from read_parquet('{}')", glob.display()),
    );
    assert_eq!(
        rows[0]["n"].as_u64(),
        Some(would),
        "the dry run's count is what a real run writes"
    );
    let dead = crate::support::dead_letters(&out_dir.join("iot-sensors").join("_dead_letter"));
    assert_eq!(
        dead.len(),
        dead_said,
        "the dry run printed each dead letter a real run keeps"
    );
}
