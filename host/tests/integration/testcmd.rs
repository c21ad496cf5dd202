//! `sluice test` and `sluice replay`: the example pipelines' own test cases pass; a wrong
//! expectation fails with a diff a person can read; yesterday's dead letters, replayed
//! through a fixed pipeline, come out as rows.

use std::path::Path;

use crate::support::{copy_pipelines, dead_letters, run, sluice};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_example_pipelines_pass_their_own_test_cases() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = copy_pipelines(tmp.path());
    let mut with_cases = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("pipelines") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if path.extension().is_some_and(|e| e == "toml") && text.contains("[[test]]") {
            with_cases.push(path);
        }
    }
    assert!(with_cases.len() >= 2, "example test cases: {with_cases:?}");
    let out = run(sluice().arg("test").args(&with_cases));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("FAILED"), "{said}");
    let ok = said.lines().filter(|l| l.trim_start().starts_with("ok ")).count();
    assert!(ok >= 4, "every case ran: {said}");
}

fn pipeline(dir: &Path, predicate: &str, cases: &str) -> std::path::PathBuf {
    let path = dir.join("p.toml");
    std::fs::write(
        &path,
        format!(
            r#"[source]
type = "file"
path = "in.ndjson"
batch_rows = 100
[source.schema]
device = {{ type = "string", nullable = false }}
temperature = "double"
[[transform]]
name = "rename"
plugin = "map"
config.mappings = [{{ from = "device", to = "device_id" }}, {{ from = "temperature" }}]
[[transform]]
name = "warm"
plugin = "filter"
config.predicate = "{predicate}"
[sink]
type = "parquet"
path = "out"
{cases}"#
        ),
    )
    .expect("pipeline");
    path
}

#[test]
fn a_wrong_expectation_fails_with_what_differs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cases = r#"
[[test]]
name = "passes"
input = [{ device = "a", temperature = 30.5 }, { device = "b", temperature = 10.0 }]
expect = [{ device_id = "a", temperature = 30.5 }]

[[test]]
name = "wrong value"
input = [{ device = "a", temperature = 30.5 }]
expect = [{ device_id = "a", temperature = 99.0 }]

[[test]]
name = "unexpected dead letter"
input = ['{"device":"a","temperature":"hot"}']
expect = []
"#;
    // More cases beside the pipeline, in `p.test.toml`.
    std::fs::write(
        tmp.path().join("p.test.toml"),
        r#"[[test]]
name = "fed to the filter directly"
stage = "warm"
input = [{ device_id = "x", temperature = 26.0 }, { device_id = "y", temperature = 24.0 }]
expect = [{ device_id = "x" }]
"#,
    )
    .expect("cases");
    // `sluice test` validates the whole pipeline first, the source's input included.
    std::fs::write(tmp.path().join("in.ndjson"), "").expect("input");
    let p = pipeline(tmp.path(), "temperature > 25", cases);
    let out = run(sluice().arg("test").arg(&p));
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let line_of = |name: &str| said.lines().find(|l| l.contains(name)).unwrap_or_default().to_owned();
    assert!(line_of("passes").trim_start().starts_with("ok"), "{said}");
    assert!(
        line_of("fed to the filter directly").trim_start().starts_with("ok"),
        "{said}"
    );
    assert!(line_of("wrong value").trim_start().starts_with("FAILED"), "{said}");
    assert!(
        said.contains("row 1: `temperature`: expected 99.0, got 30.5"),
        "the diff names the row, column and both values: {said}"
    );
    assert!(
        line_of("unexpected dead letter").trim_start().starts_with("FAILED"),
        "{said}"
    );
    assert!(said.contains("expected 0 dead letters, got 1"), "{said}");
    assert!(said.contains("4 tests: 2 passed, 2 failed"), "{said}");

    // The same cases against a filter that lets everything through: the passing case fails.
    let p = pipeline(tmp.path(), "temperature > -1000", cases);
    let said = text(&run(sluice().arg("test").arg(&p)));
    assert!(said.contains("FAILED  passes"), "{said}");
    assert!(said.contains("row 2 was not expected"), "{said}");
}

#[test]
fn dead_letters_of_a_past_run_replay_through_a_fixed_pipeline() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Yesterday's devices sent temperatures as strings sometimes: those lines were refused.
    let mut input = String::new();
    let mut refused = Vec::new();
    for i in 0..40 {
        if i % 4 == 1 {
            let line = format!("{{\"device\":\"d{i}\",\"temperature\":\"{}.5\"}}", 20 + i);
            refused.push((format!("d{i}"), 20.5 + i as f64));
            input.push_str(&line);
        } else {
            input.push_str(&format!("{{\"device\":\"d{i}\",\"temperature\":{}.0}}", 20 + i));
        }
        input.push('\n');
    }
    std::fs::write(tmp.path().join("in.ndjson"), &input).expect("input");
    let strict = pipeline(tmp.path(), "temperature > 0", "");
    run(sluice().arg("run").arg(&strict));
    let dead = dead_letters(&tmp.path().join("out"));
    assert_eq!(dead.len(), refused.len(), "{dead:?}");

    // The fix: numbers in strings are taken (`coerce = "lenient"`). Replay the dead letters.
    let text_of = std::fs::read_to_string(&strict).expect("read");
    let fixed = tmp.path().join("fixed.toml");
    std::fs::write(
        &fixed,
        text_of.replace("batch_rows = 100", "batch_rows = 100\ncoerce = \"lenient\""),
    )
    .expect("fixed");
    let dl = tmp.path().join("out").join("_dead_letter");
    let out = run(sluice()
        .args(["replay", "--format", "json", "--input"])
        .arg(&dl)
        .arg(&fixed));
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    let got: Vec<(String, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["device_id"].as_str().expect("device_id").to_owned(),
                r["temperature"].as_f64().expect("temperature"),
            )
        })
        .collect();
    assert_eq!(got, refused, "every refused record comes out, in order, with its value");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("10 records in, 10 rows out, 0 dead letters"),
        "{}",
        text(&out)
    );

    // The unfixed pipeline still refuses them, and says so.
    let out = run(sluice()
        .args(["replay", "--limit", "3", "--input"])
        .arg(&dl)
        .arg(&strict));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 records in, 0 rows out, 3 dead letters"),
        "{}",
        text(&out)
    );
}
